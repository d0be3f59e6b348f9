use tidings::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(codec = "json")]
pub struct Created {
    pub order_id: String,
}

fn main() {}
