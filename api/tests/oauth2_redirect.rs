//! `GET|POST /api/oauth2-redirect`, the SDK's popup flow, byte for byte as measured on
//! PocketBase v0.40.6: the `state` is the realtime client id of the SDK; a client subscribed
//! to `@oauth2` receives `id:<clientId>` / `event:@oauth2` / `data:{"state","code"}` (plus
//! `"error"` when the provider sent one), and the popup is redirected to the dashboard's
//! success page (307 for GET, 303 for a form POST) or its failure page.

#![allow(clippy::unwrap_used)]

mod realtime_support;

use api::ServerOptions;
use realtime_support::{temp_dir, Server, Sse};
use std::time::Duration;

async fn redirect(server: &Server, method: &str, query: &str, form: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = server.url(&format!("/api/oauth2-redirect{query}"));
    let request = match form {
        Some(form) => client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string()),
        None if method == "POST" => client.post(url),
        None => client.get(url),
    };
    let response = request.send().await.unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (response.status().as_u16(), location)
}

const SUCCESS: &str = "../_/#/auth/oauth2-redirect-success";
const FAILURE: &str = "../_/#/auth/oauth2-redirect-failure";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_redirect_reaches_the_subscribed_realtime_client() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;

    // No such client: failure, nothing else happens.
    assert_eq!(
        redirect(&server, "GET", "?state=nobody&code=c", None).await,
        (307, FAILURE.into())
    );
    assert_eq!(
        redirect(&server, "GET", "", None).await,
        (307, FAILURE.into())
    );

    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let client_id = sse.client_id.clone();
    // Connected but not subscribed to @oauth2: failure.
    assert_eq!(
        redirect(&server, "GET", &format!("?state={client_id}&code=c0"), None).await,
        (307, FAILURE.into())
    );
    assert_eq!(server.subscribe(&client_id, &["@oauth2"], None).await, 204);
    assert_eq!(
        redirect(
            &server,
            "GET",
            &format!("?state={client_id}&code=CODE1"),
            None
        )
        .await,
        (307, SUCCESS.into())
    );
    let frame = sse
        .next(Duration::from_secs(5))
        .await
        .expect("@oauth2 event");
    assert_eq!(
        frame.raw,
        format!("id:{client_id}\nevent:@oauth2\ndata:{{\"state\":\"{client_id}\",\"code\":\"CODE1\"}}\n\n")
    );
    // The provider's error is passed on and the popup goes to the failure page.
    assert_eq!(
        redirect(
            &server,
            "GET",
            &format!("?state={client_id}&error=access_denied"),
            None
        )
        .await,
        (307, FAILURE.into())
    );
    let frame = sse.next(Duration::from_secs(5)).await.expect("error event");
    assert_eq!(
        frame.data,
        format!("{{\"state\":\"{client_id}\",\"code\":\"\",\"error\":\"access_denied\"}}")
    );
    // A form POST (Apple's response_mode=form_post): 303.
    assert_eq!(
        redirect(
            &server,
            "POST",
            "",
            Some(&format!("state={client_id}&code=CODE2"))
        )
        .await,
        (303, SUCCESS.into())
    );
    let frame = sse.next(Duration::from_secs(5)).await.expect("post event");
    assert_eq!(frame.json()["code"], "CODE2");
    // Another client's id does not reach this one.
    assert_eq!(
        redirect(&server, "GET", "?state=someoneelse&code=X", None).await,
        (307, FAILURE.into())
    );
    sse.expect_silence(Duration::from_millis(300)).await;
    server.stop().await;
}
