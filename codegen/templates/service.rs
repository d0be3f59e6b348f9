{%- for s in services %}
{%- for r in s.rpcs %}

{{ r.doc("") }}/// The `{{ r.name }}` operation of `{{ s.name }}`: requests on `{{ r.topic }}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct {{ r.type_name }};

impl {{ rt }}::Rpc for {{ r.type_name }} {
    type Request = {{ r.request }};
    type Reply = {{ r.reply }};
    const TOPIC: &'static str = "{{ r.topic }}";
    const NAME: &'static str = "{{ r.full_name }}";
}
{%- endfor %}

{{ s.doc }}/// A client of `{{ s.name }}`, one method per operation.
///
/// A method returns the runtime's call: `.await` it to send the request and wait for the reply,
/// or set a deadline or the event it reacts to (`caused_by`) first.
#[derive(Clone, Debug)]
pub struct {{ s.client }} {
    client: {{ rt }}::Client,
}

impl {{ s.client }} {
    /// A client of `{{ s.name }}` that calls through `client`.
    pub fn new(client: {{ rt }}::Client) -> Self {
        Self { client }
    }
{%- for r in s.rpcs %}

    {{ r.doc("    ") }}/// Calls [`{{ r.type_name }}`]: sends `request` on `{{ r.topic }}`.
    /// Await it for the reply; `.deadline(..)` and `.caused_by(..)` set options first.
    pub fn {{ r.method }}<'a>(&'a self, request: &'a {{ r.request }}) -> {{ rt }}::Call<'a, {{ r.type_name }}> {
        self.client.call::<{{ r.type_name }}>(request)
    }
{%- endfor %}
}

/// The server side of `{{ s.name }}`: one method per operation.
///
/// [`{{ s.serve }}`] serves an implementation. A method answers its request with the reply, or
/// with a status saying why it cannot, which the caller receives as an error.
pub trait {{ s.server }}: Send + Sync + 'static {
{%- for r in s.rpcs %}
{%- if !loop.first %}
{% endif %}
    {{ r.doc("    ") }}/// Answers a request of [`{{ r.type_name }}`] from `{{ r.topic }}`.
    fn {{ r.method }}(
        &self,
        request: {{ rt }}::Received<{{ r.request }}>,
    ) -> impl ::core::future::Future<Output = ::core::result::Result<{{ r.reply }}, {{ rt }}::Status>> + Send;
{%- endfor %}
}

/// Serves every operation of `{{ s.name }}` with `server`, in the group named after the service
/// (`{{ s.full_name }}`), so that its replicas share the requests.
///
/// Returns one handle on the subscriptions, one per operation; its `shutdown` stops them all.
pub async fn {{ s.serve }}<S: {{ s.server }}>(
    bus: &{{ rt }}::Bus,
    server: S,
) -> ::core::result::Result<{{ rt }}::Subscriptions, {{ rt }}::SubscribeError> {
    {{ s.serve_in }}(bus, "{{ s.full_name }}", server).await
}

/// Serves every operation of `{{ s.name }}` with `server`, in the group `group`: the replicas
/// serving in one group share the requests.
///
/// Returns one handle on the subscriptions, one per operation; its `shutdown` stops them all. When
/// one cannot be made, those already made are shut down and the error is returned.
pub async fn {{ s.serve_in }}<S: {{ s.server }}>(
    bus: &{{ rt }}::Bus,
    group: &str,
    server: S,
) -> ::core::result::Result<{{ rt }}::Subscriptions, {{ rt }}::SubscribeError> {
    let server = ::std::sync::Arc::new(server);
    let mut serving = {{ rt }}::Subscriptions::new();
{%- for r in s.rpcs %}

    let served = bus
        .serve::<{{ r.type_name }}, _>(group, {
            let server = ::std::sync::Arc::clone(&server);
            move |request: {{ rt }}::Received<{{ r.request }}>| {
                let server = ::std::sync::Arc::clone(&server);
                async move { server.{{ r.method }}(request).await }
            }
        })
        .await;
    match served {
        ::core::result::Result::Ok(subscription) => serving.push(subscription),
        ::core::result::Result::Err(error) => {
            serving.shutdown().await;
            return ::core::result::Result::Err(error);
        }
    }
{%- endfor %}

    ::core::result::Result::Ok(serving)
}
{%- endfor %}
