//! Reading attribute names out of transport header names, which come from the network and may
//! hold any text.

/// The attribute a header named `header` carries under the transport's `prefix`, the prefix
/// compared without regard to ASCII case (`ce-id` and `CE-Id` carry `id`, `Id`): `None` when the
/// name does not start with the prefix or is the prefix alone. Whatever `header` holds, this
/// never slices inside a character, so it cannot panic.
pub fn attribute_name<'a>(header: &'a str, prefix: &str) -> Option<&'a str> {
    let head = header.as_bytes().get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix.as_bytes()) {
        return None;
    }
    header.get(prefix.len()..).filter(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_stripped_whatever_its_case() {
        assert_eq!(attribute_name("ce-id", "ce-"), Some("id"));
        assert_eq!(attribute_name("CE-Type", "ce-"), Some("Type"));
        assert_eq!(
            attribute_name("cloudEvents_source", "cloudevents_"),
            Some("source")
        );
        assert_eq!(attribute_name("ce-", "ce-"), None);
        assert_eq!(attribute_name("content-type", "ce-"), None);
        assert_eq!(attribute_name("c", "ce-"), None);
    }

    #[test]
    fn a_character_across_the_end_of_the_prefix_is_no_match() {
        // `é` is two bytes, the second where the prefix ends.
        assert_eq!(attribute_name("ceé", "ce-"), None);
        assert_eq!(attribute_name("cé", "ce-"), None);
        assert_eq!(attribute_name("ce-é", "ce-"), Some("é"));
    }
}
