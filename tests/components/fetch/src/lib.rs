//! The `fetch` test component: one outgoing HTTP GET per call, through `wasi:http`.

wit_bindgen::generate!({ path: "wit", world: "fetch" });

struct Component;

impl Guest for Component {
    fn fetch(url: String) -> Result<HttpResponse, String> {
        let response = http_get::get(&url)?;
        Ok(HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

export!(Component);
