//! Request bodies as SimpleJWT takes them: JSON or `application/x-www-form-urlencoded`, read with
//! a size limit, and checked field by field with DRF's messages so every problem is a clear 400.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use poem::Request;
use poem::web::RequestBody;
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::{Map, Value};

use super::error::{ApiError, OAuthApiError};
use super::front_door::RequestServices;

/// A request object built from named fields, collecting every field's errors.
pub trait FromFields: Type + Sized {
    /// Returns `None` when `fields` recorded an error.
    fn from_fields(fields: &mut Fields) -> Option<Self>;
}

/// A body accepted as JSON or as form data. Its problems are answered as `E`: the contract's
/// errors by default, or OAuth's (`invalid_request`) for [`OAuthParams`].
pub struct JsonOrForm<T, E = ApiError>(pub T, PhantomData<fn() -> E>);

/// An OAuth 2.0 request body: form data (RFC 6749), JSON also accepted, errors in OAuth's shape.
pub type OAuthParams<T> = JsonOrForm<T, OAuthApiError>;

/// A body accepted as JSON only (415 for form data): for the endpoint that sets cookies, since a
/// cross-site HTML form can send form data but not JSON (that needs a CORS preflight), so no other
/// site can log a browser into an account of its choosing (login CSRF).
pub type JsonBody<T> = JsonOrForm<T, JsonOnly>;

/// The contract's errors, for a body that must be JSON.
pub struct JsonOnly(ApiError);

impl From<ApiError> for JsonOnly {
    fn from(err: ApiError) -> JsonOnly {
        JsonOnly(err)
    }
}

impl From<JsonOnly> for poem::Error {
    fn from(err: JsonOnly) -> poem::Error {
        err.0.into()
    }
}

/// How a body's problems are answered, and the encodings it accepts (the spec offers the first
/// first).
pub trait BodyErrors: From<ApiError> + Into<poem::Error> {
    const CONTENT_TYPES: &'static [&'static str];
}

impl BodyErrors for ApiError {
    const CONTENT_TYPES: &'static [&'static str] =
        &["application/json", "application/x-www-form-urlencoded"];
}

impl BodyErrors for JsonOnly {
    const CONTENT_TYPES: &'static [&'static str] = &["application/json"];
}

/// RFC 6749's encoding is form data.
impl BodyErrors for OAuthApiError {
    const CONTENT_TYPES: &'static [&'static str] =
        &["application/x-www-form-urlencoded", "application/json"];
}

impl<'a, T: FromFields + Send, E: BodyErrors> ApiExtractor<'a> for JsonOrForm<T, E> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        let media = |content_type| MetaMediaType {
            content_type,
            schema: T::schema_ref(),
        };
        Some(MetaRequest {
            description: None,
            content: E::CONTENT_TYPES.iter().copied().map(media).collect(),
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let accepts_form = E::CONTENT_TYPES.contains(&FORM);
        match read_fields(request, body, accepts_form).await {
            Ok(value) => Ok(JsonOrForm(value, PhantomData)),
            Err(err) => Err(E::from(err).into()),
        }
    }
}

/// Reads the body within the limit and builds `T` from its fields, or says what is wrong.
async fn read_fields<T: FromFields>(
    request: &Request,
    body: &mut RequestBody,
    accepts_form: bool,
) -> Result<T, ApiError> {
    let limit = request
        .data::<RequestServices>()
        .map_or(64 * 1024, |services| services.body_limit);
    let body = body
        .take()
        .map_err(|_| ApiError::invalid("The request body was already read."))?;
    let bytes = read_limited(body, limit).await?;
    let map = parse_object(request.content_type(), &bytes, accepts_form)?;
    let mut fields = Fields {
        map,
        errors: BTreeMap::new(),
    };
    match T::from_fields(&mut fields) {
        Some(value) if fields.errors.is_empty() => Ok(value),
        _ => Err(ApiError::invalid_fields(fields.errors)),
    }
}

/// The whole body, at most `limit` bytes. One that arrives in a single frame (most do) is taken
/// as it is: poem's `into_bytes_limit` zeroes a 4 KiB buffer and copies through it for every
/// body, a twentieth of a verify's instructions (callgrind).
async fn read_limited(body: poem::Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BoxBody::from(body);
    let mut whole: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::invalid(format!("Could not read the request body: io: {err}"))
        })?;
        // Trailers carry no data.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        length += data.len();
        if length > limit {
            return Err(ApiError::too_large(limit));
        }
        if whole.is_none() && joined.is_empty() {
            whole = Some(data);
        } else {
            if let Some(first) = whole.take() {
                joined.extend_from_slice(&first);
            }
            joined.extend_from_slice(&data);
        }
    }
    Ok(whole.unwrap_or_else(|| joined.freeze()))
}

const FORM: &str = "application/x-www-form-urlencoded";

fn parse_object(
    content_type: Option<&str>,
    bytes: &[u8],
    accepts_form: bool,
) -> Result<Map<String, Value>, ApiError> {
    let essence = content_type.map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    match essence.as_deref() {
        // Nothing at all: every field is simply missing.
        None if bytes.is_empty() => Ok(Map::new()),
        Some("application/json") => parse_json_object(bytes),
        Some(ct) if ct.ends_with("+json") => parse_json_object(bytes),
        Some(FORM) if accepts_form => parse_form(bytes),
        _ => Err(ApiError::unsupported_media_type(
            content_type.unwrap_or_default(),
        )),
    }
}

fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::invalid(format!(
            "Invalid data. Expected a dictionary, but got {}.",
            json_type_name(&other)
        ))),
        Err(err) => Err(ApiError::invalid(format!("JSON parse error - {err}"))),
    }
}

/// Form fields become strings. A field given twice is refused rather than guessed at.
fn parse_form(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut map = Map::new();
    let mut repeated = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(bytes) {
        if map
            .insert(name.to_string(), Value::String(value.into_owned()))
            .is_some()
        {
            repeated.insert(
                name.into_owned(),
                vec!["This field was given more than once.".into()],
            );
        }
    }
    if repeated.is_empty() {
        Ok(map)
    } else {
        Err(ApiError::invalid_fields(repeated))
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The fields of one body, and the errors found so far.
pub struct Fields {
    map: Map<String, Value>,
    errors: BTreeMap<String, Vec<String>>,
}

impl Fields {
    /// A required, non-blank string of at most `max_chars` characters. Passwords keep their
    /// whitespace; other fields are trimmed, as DRF's `CharField` does.
    pub fn string(&mut self, name: &str, trim: bool, max_chars: usize) -> Option<String> {
        if !self.map.contains_key(name) {
            self.error(name, "This field is required.".into());
            return None;
        }
        self.optional_string(name, trim, max_chars, false)?
    }

    /// `Some(None)` when absent; otherwise as [`Fields::string`], blank allowed if `allow_blank`.
    /// `None` means the field was present but wrong, and an error was recorded.
    pub fn optional_string(
        &mut self,
        name: &str,
        trim: bool,
        max_chars: usize,
        allow_blank: bool,
    ) -> Option<Option<String>> {
        let problem = match self.map.remove(name) {
            None => return Some(None),
            Some(Value::Null) => "This field may not be null.".to_owned(),
            Some(Value::String(text)) => {
                // Copied only when there is something to trim: a token is hundreds of bytes.
                let text = if trim && text.trim().len() != text.len() {
                    text.trim().to_owned()
                } else {
                    text
                };
                if text.is_empty() && !allow_blank {
                    "This field may not be blank.".to_owned()
                } else if text.contains('\0') {
                    // DRF's ProhibitNullCharactersValidator; PostgreSQL refuses NUL in text.
                    "Null characters are not allowed.".to_owned()
                } else if text.len() > max_chars && text.chars().count() > max_chars {
                    format!("Ensure this field has no more than {max_chars} characters.")
                } else {
                    return Some(Some(text));
                }
            }
            Some(_) => "Not a valid string.".to_owned(),
        };
        self.error(name, problem);
        None
    }

    /// `None`-when-absent boolean, as DRF's `BooleanField` reads JSON and form values.
    pub fn optional_bool(&mut self, name: &str) -> Option<Option<bool>> {
        let value = match self.map.remove(name) {
            None => return Some(None),
            Some(Value::Bool(value)) => Some(value),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            Some(Value::String(text)) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => None,
            },
            Some(_) => None,
        };
        if value.is_none() {
            self.error(name, "Must be a valid boolean.".into());
            return None;
        }
        Some(value)
    }

    /// `Some(None)` when absent; a JSON list of strings (DRF's `ListField`; form data cannot
    /// hold one). Each item is kept as given: the domain validates it.
    pub fn optional_string_list(&mut self, name: &str) -> Option<Option<Vec<String>>> {
        let problem = match self.map.remove(name) {
            None => return Some(None),
            Some(Value::Array(items)) => {
                let strings: Option<Vec<String>> = items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(text) if !text.contains('\0') => Some(text),
                        _ => None,
                    })
                    .collect();
                match strings {
                    Some(strings) => return Some(Some(strings)),
                    None => "Every item must be a string (without null characters).".to_owned(),
                }
            }
            Some(other) => format!(
                "Expected a list of items but got type \"{}\".",
                json_type_name(&other)
            ),
        };
        self.error(name, problem);
        None
    }

    /// A required list of strings (see [`Fields::optional_string_list`]).
    pub fn string_list(&mut self, name: &str) -> Option<Vec<String>> {
        if !self.map.contains_key(name) {
            self.error(name, "This field is required.".into());
            return None;
        }
        self.optional_string_list(name)?
    }

    /// A required list of UUIDs.
    pub fn uuid_list(&mut self, name: &str) -> Option<Vec<uuid::Uuid>> {
        let strings = self.string_list(name)?;
        let ids: Result<Vec<uuid::Uuid>, _> = strings.iter().map(|s| s.parse()).collect();
        match ids {
            Ok(ids) => Some(ids),
            Err(_) => {
                self.error(name, "Every item must be a valid UUID.".into());
                None
            }
        }
    }

    /// `Some(None)` when absent; a JSON object (its keys and size are the domain's to check).
    pub fn optional_object(&mut self, name: &str) -> Option<Option<Map<String, Value>>> {
        match self.map.remove(name) {
            None => Some(None),
            Some(Value::Object(map)) => Some(Some(map)),
            Some(other) => {
                let got = json_type_name(&other);
                self.error(
                    name,
                    format!("Expected a JSON object but got type \"{got}\"."),
                );
                None
            }
        }
    }

    fn error(&mut self, name: &str, problem: String) {
        self.errors
            .entry(name.to_owned())
            .or_default()
            .push(problem);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;

    use super::*;

    fn in_frames(frames: &[&'static str]) -> poem::Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = frames
            .iter()
            .map(|frame| Ok(Bytes::from_static(frame.as_bytes())))
            .collect();
        poem::Body::from_bytes_stream(stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_in_several_frames_is_read_whole_and_within_the_limit() {
        for frames in [
            &[][..],
            &["{\"token\":\"abc\"}"],
            &["{\"tok", "", "en\":", "\"abc\"}"],
        ] {
            let read = read_limited(in_frames(frames), 15).await.unwrap();
            assert_eq!(read, frames.concat().as_bytes(), "{frames:?}");
        }
        for frames in [&["{\"token\":\"abcd\"}"][..], &["{\"token\":", "\"abcd\"}"]] {
            let refused = read_limited(in_frames(frames), 15).await.unwrap_err();
            assert_eq!(refused.status().as_u16(), 413, "{frames:?}");
        }
    }
}
