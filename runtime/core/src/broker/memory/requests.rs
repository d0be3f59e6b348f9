//! Request-reply in the in-process broker: a request goes straight to one server of each group
//! serving its topic, taken in turn, and the reply comes back on a channel of its own. A request
//! nobody serves fails at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::adapter::lock;
use crate::broker::request::{IncomingRequest, Replier, RequestFailure, RequestStream, Requester};
use crate::broker::{BrokerError, Message};
use crate::topic::Topic;

/// The servers of every topic, by group.
#[derive(Default)]
pub(super) struct Servers {
    topics: Mutex<HashMap<String, Vec<Group>>>,
}

/// The servers of one group, and which one takes the next request.
struct Group {
    name: String,
    members: Vec<mpsc::UnboundedSender<IncomingRequest>>,
    next: usize,
}

impl Servers {
    /// Adds a server of `topic` in `group`; its requests arrive on the stream returned.
    pub(super) fn serve(&self, topic: &Topic, group: &str) -> Box<dyn RequestStream> {
        let (member, requests) = mpsc::unbounded_channel();
        let mut topics = lock(&self.topics);
        let groups = topics.entry(topic.as_str().to_owned()).or_default();
        match groups.iter_mut().find(|g| g.name == group) {
            Some(existing) => existing.members.push(member),
            None => groups.push(Group {
                name: group.to_owned(),
                members: vec![member],
                next: 0,
            }),
        }
        Box::new(MemoryRequests { requests })
    }

    /// Hands `message` to one live server of each group of `topic`: the replies' receivers, none
    /// when nobody serves it. Servers that went are forgotten on the way.
    fn dispatch(&self, topic: &Topic, message: &Message) -> Vec<oneshot::Receiver<Message>> {
        let mut topics = lock(&self.topics);
        let Some(groups) = topics.get_mut(topic.as_str()) else {
            return Vec::new();
        };
        let mut replies = Vec::new();
        for group in groups.iter_mut() {
            group.members.retain(|member| !member.is_closed());
            while !group.members.is_empty() {
                let at = group.next % group.members.len();
                group.next = at + 1;
                let (reply, replied) = oneshot::channel();
                let request = IncomingRequest {
                    message: Ok(message.clone()),
                    replier: Box::new(MemoryReplier { reply }),
                };
                if group.members[at].send(request).is_ok() {
                    replies.push(replied);
                    break;
                }
                // It went since the check above.
                group.members.remove(at);
            }
        }
        groups.retain(|group| !group.members.is_empty());
        replies
    }
}

/// A requester of the in-process broker.
pub(super) struct MemoryRequester {
    pub(super) servers: Arc<Servers>,
}

#[async_trait]
impl Requester for MemoryRequester {
    async fn request(
        &self,
        topic: &Topic,
        message: Message,
        timeout: Duration,
    ) -> Result<Message, RequestFailure> {
        let replies = self.servers.dispatch(topic, &message);
        if replies.is_empty() {
            return Err(RequestFailure::NoResponders {
                topic: topic.clone(),
            });
        }
        // The first reply wins; a server that went without answering leaves the others.
        let first = futures_util::future::select_ok(replies);
        match tokio::time::timeout(timeout, first).await {
            Ok(Ok((reply, _))) => Ok(reply),
            Ok(Err(_)) => Err(RequestFailure::Broker(BrokerError::Closed {
                broker: super::NAME,
            })),
            Err(_) => Err(RequestFailure::Timeout {
                topic: topic.clone(),
                after: timeout,
            }),
        }
    }
}

struct MemoryReplier {
    reply: oneshot::Sender<Message>,
}

#[async_trait]
impl Replier for MemoryReplier {
    async fn reply(self: Box<Self>, message: Message) -> Result<(), BrokerError> {
        // A requester that stopped waiting (its deadline passed, or another group answered
        // first) takes nothing: the reply has nowhere to go, which is no failure of the server.
        drop(self.reply.send(message));
        Ok(())
    }
}

struct MemoryRequests {
    requests: mpsc::UnboundedReceiver<IncomingRequest>,
}

#[async_trait]
impl RequestStream for MemoryRequests {
    async fn next(&mut self) -> Option<Result<IncomingRequest, BrokerError>> {
        self.requests.recv().await.map(Ok)
    }

    async fn close(&mut self) {
        self.requests.close();
    }
}
