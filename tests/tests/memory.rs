//! The conformance suite on the in-process broker, as it is, as a broker that cannot delay a
//! redelivery (so the typed layer waits out each backoff itself before it nacks), and as a broker
//! without consumer groups (so the cases that need them are excluded by its capabilities, as an
//! adapter outside this repository would see them).

use std::sync::Arc;

use tidings::{Broker, BrokerError, MemoryBroker};
use tidings_conformance::BrokerFactory;

/// Connections to one in-process broker: every `connect` shares its state, like clients of one
/// server.
struct Memory(MemoryBroker);

impl BrokerFactory for Memory {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(self.0.clone()))
    }
}

tidings_conformance::conformance_tests!(
    Memory(MemoryBroker::new()),
    // Everything on the in-process broker was published through tidings.
    not_promised[broker_restart, foreign_messages_are_dead_lettered]
);

mod without_nack_delay {
    use std::sync::Arc;

    use async_trait::async_trait;
    use tidings::broker::{DeliveryStream, Message, SubscribeRequest};
    use tidings::{Broker, BrokerError, Capabilities, MemoryBroker, Topic};
    use tidings_conformance::BrokerFactory;

    /// The in-process broker, declaring that a nack cannot ask for a delay. Implementing
    /// neither `requester` nor `serve`, it carries requests over publish and subscribe, as an
    /// adapter without request-reply of its own does, where a request nobody serves waits for
    /// its deadline.
    #[derive(Clone, Default)]
    struct NoNackDelay(MemoryBroker);

    #[async_trait]
    impl Broker for NoNackDelay {
        fn name(&self) -> &'static str {
            "memory-without-nack-delay"
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities {
                nack_delay: false,
                no_responders: false,
                ..self.0.capabilities()
            }
        }

        async fn publish(
            &self,
            topic: &Topic,
            message: Message,
        ) -> Result<tidings::Confirmation, BrokerError> {
            self.0.publish(topic, message).await
        }

        async fn subscribe(
            &self,
            request: SubscribeRequest,
        ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
            self.0.subscribe(request).await
        }
    }

    struct Factory(NoNackDelay);

    impl BrokerFactory for Factory {
        async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
            Ok(Arc::new(self.0.clone()))
        }
    }

    tidings_conformance::conformance_tests!(
        Factory(NoNackDelay::default()),
        not_promised[broker_restart, foreign_messages_are_dead_lettered]
    );
}

mod without_groups {
    use std::sync::Arc;

    use async_trait::async_trait;
    use tidings::broker::{DeliveryStream, Message, SubscribeRequest};
    use tidings::{Broker, BrokerError, Capabilities, Confirmation, MemoryBroker, Topic};
    use tidings_conformance::BrokerFactory;

    /// The in-process broker, declaring that it has no consumer groups and refusing to join one.
    #[derive(Clone, Default)]
    struct NoGroups(MemoryBroker);

    #[async_trait]
    impl Broker for NoGroups {
        fn name(&self) -> &'static str {
            "memory-without-groups"
        }

        fn capabilities(&self) -> Capabilities {
            // Without groups, requests have no way to be shared among servers.
            Capabilities {
                groups: false,
                request_reply: false,
                no_responders: false,
                ..self.0.capabilities()
            }
        }

        async fn publish(
            &self,
            topic: &Topic,
            message: Message,
        ) -> Result<Confirmation, BrokerError> {
            self.0.publish(topic, message).await
        }

        fn try_publish(
            &self,
            topic: &Topic,
            message: Message,
        ) -> Result<Result<Confirmation, BrokerError>, Message> {
            self.0.try_publish(topic, message)
        }

        async fn subscribe(
            &self,
            request: SubscribeRequest,
        ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
            if request.group.is_some() {
                return Err(BrokerError::Unsupported {
                    broker: self.name(),
                    what: "consumer groups",
                });
            }
            self.0.subscribe(request).await
        }
    }

    struct Factory(NoGroups);

    impl BrokerFactory for Factory {
        async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
            Ok(Arc::new(self.0.clone()))
        }
    }

    tidings_conformance::conformance_tests!(
        Factory(NoGroups::default()),
        // Without groups: `groups` itself, and the cases that need a group to redeliver to or to
        // rejoin. Then what the in-process broker never promises.
        not_promised[
            groups,
            redelivery_after_consumer_dies,
            close_and_resubscribe,
            broker_restart,
            foreign_messages_are_dead_lettered,
            request_reply,
            request_deadline,
            request_groups,
            request_status,
            request_refusal,
        ]
    );
}
