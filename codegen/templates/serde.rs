{% for t in types -%}
impl {{ rt }}::__private::serde::Serialize for {{ t.path }} {
    fn serialize<S: {{ rt }}::__private::serde::Serializer>(
        &self,
        serializer: S,
    ) -> ::core::result::Result<S::Ok, S::Error> {
        {{ support }}::serialize(self, "{{ t.schema }}", serializer)
    }
}

impl<'de> {{ rt }}::__private::serde::Deserialize<'de> for {{ t.path }} {
    fn deserialize<D: {{ rt }}::__private::serde::Deserializer<'de>>(
        deserializer: D,
    ) -> ::core::result::Result<Self, D::Error> {
        {{ support }}::deserialize("{{ t.schema }}", deserializer)
    }
}

{% endfor -%}
