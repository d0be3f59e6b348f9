/// Publishes the events of package `{{ package }}`, one method per event.
///
/// A method returns the runtime's publish builder: `.await` it to publish and wait for the
/// broker's confirmation, or set a key, a timeout or the event it reacts to (`caused_by`, which
/// carries the correlation id, causation and trace on) first.
#[derive(Clone, Debug)]
pub struct Publisher {
    bus: {{ rt }}::Bus,
}

impl Publisher {
    /// A publisher that publishes on `bus`.
    pub fn new(bus: {{ rt }}::Bus) -> Self {
        Self { bus }
    }
{%- for e in events %}

    /// Publishes [`{{ e.event.type_name }}`] on `{{ e.event.info.topic }}`
{%- if e.event.payload.is_some() %}: its payload alone travels{% endif %}.
    pub fn {{ e.event.method }}<'a>(&'a self, event: &'a {{ e.event.type_name }}) -> {{ rt }}::Publish<'a, {{ e.event.type_name }}> {
        self.bus.publish_with(event)
    }
{%- endfor %}
}

/// Handles the events of package `{{ package }}`, one method per event.
///
/// [`subscribe`] subscribes an implementation to all of them. A method that returns an error
/// has its event retried, then dead-lettered, as the subscription's options say.
{%- match handler_default %}
{%- when HandlerDefault::Required %}
{%- when HandlerDefault::Ignore %}
///
/// Every method has a default that acks its event and drops it, so an implementation overrides
/// the events it handles, and an event added to the package does not break it.
{%- when HandlerDefault::DeadLetter %}
///
/// Every method has a default that dead-letters its event at once, without retries, so an
/// implementation overrides the events it handles, and an event added to the package does not
/// break it: its events are dead-lettered until the implementation handles them.
{%- endmatch %}
pub trait Handler: Send + Sync + 'static {
{%- for e in events %}
{%- if !loop.first %}
{% endif %}
    /// Handles {% if e.event.payload.is_some() %}the payload of {% endif %}[`{{ e.event.type_name }}`] from `{{ e.event.info.topic }}`.
{%- match handler_default %}
{%- when HandlerDefault::Required %}
{%- when HandlerDefault::Ignore %}
    ///
    /// By default, acks the event and drops it.
{%- when HandlerDefault::DeadLetter %}
    ///
    /// By default, dead-letters the event at once, without retries.
{%- endmatch %}
    fn {{ e.event.method }}(
        &self,
        {{ event_param }}: {{ rt }}::Received<{{ e.handled }}>,
    ) -> impl ::core::future::Future<Output = ::core::result::Result<(), {{ rt }}::HandlerError>> + Send
{%- match handler_default %}
{%- when HandlerDefault::Required %};
{%- when HandlerDefault::Ignore %} {
        async { ::core::result::Result::Ok(()) }
    }
{%- when HandlerDefault::DeadLetter %} {
        async move {
            ::core::result::Result::Err({{ rt }}::HandlerError::permanent(
                "no handler for {{ e.event.info.topic }} in this service",
            ))
        }
    }
{%- endmatch %}
{%- endfor %}
}

/// Subscribes `handler` to every event of package `{{ package }}`, each with `options`: every
/// plain subscriber gets every event (fan-out), and the members of a group named in `options`
/// share them (competing consumers).
///
/// Returns one handle on the subscriptions, one per event; its `shutdown` stops them all. When
/// one cannot be made, those already made are shut down and the error is returned.
pub async fn subscribe<H: Handler>(
    bus: &{{ rt }}::Bus,
    handler: H,
    options: {{ rt }}::SubscribeOptions,
) -> ::core::result::Result<{{ rt }}::Subscriptions, {{ rt }}::SubscribeError> {
    let handler = ::std::sync::Arc::new(handler);
    let mut subscriptions = {{ rt }}::Subscriptions::new();
{%- for e in events %}

    let subscribed = bus
        .subscribe_with(
            {
                let handler = ::std::sync::Arc::clone(&handler);
                move |event: {{ rt }}::Received<{{ e.event.type_name }}>| {
                    let handler = ::std::sync::Arc::clone(&handler);
{%- if e.event.payload.is_some() %}
                    async move {
                        handler
                            .{{ e.event.method }}(event.map({{ rt }}::Wrapper::into_payload))
                            .await
                    }
{%- else %}
                    async move { handler.{{ e.event.method }}(event).await }
{%- endif %}
                }
            },
            options.clone(),
        )
        .await;
    match subscribed {
        ::core::result::Result::Ok(subscription) => subscriptions.push(subscription),
        ::core::result::Result::Err(error) => {
            subscriptions.shutdown().await;
            return ::core::result::Result::Err(error);
        }
    }
{%- endfor %}

    ::core::result::Result::Ok(subscriptions)
}
