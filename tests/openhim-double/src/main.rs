//! Runs the OpenHIM double by itself, for manual tests against a mediator:
//! prints its API and router URLs and serves until Ctrl-C.

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let double = openhim_double::OpenHimDouble::start().await?;
    println!("OpenHIM double API    {}", double.api_url());
    println!("OpenHIM double router {}", double.router_url());
    println!(
        "API user {} / {}",
        openhim_double::ROOT_EMAIL,
        openhim_double::ROOT_PASSWORD
    );
    tokio::signal::ctrl_c().await?;
    double.stop().await;
    Ok(())
}
