# OpenBao in server mode for the compose stack: file storage on a volume,
# plain HTTP on the internal compose network only (the port is not published).
# Production: put TLS on the listener and use auto-unseal or an HSM.
storage "file" {
  path = "/openbao/data"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

api_addr      = "http://openbao:8200"
disable_mlock = true
ui            = false
