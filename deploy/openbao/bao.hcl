# OpenBao in server mode for the compose stack: integrated (raft) storage on a
# volume (OpenBao 2.x has no "file" backend), plain HTTP on the internal compose
# network only (the port is not published).
# Production: put TLS on the listener and use auto-unseal or an HSM.
storage "raft" {
  path    = "/openbao/data"
  node_id = "openbao-1"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_disable     = true
}

api_addr     = "http://openbao:8200"
cluster_addr = "http://openbao:8201"
ui           = false
