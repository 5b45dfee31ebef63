//! Logging set-up: `tracing` to `--log FILE` (appended) or stderr, as text or as runc's
//! JSON lines (`{"level":"error","msg":"...","time":"..."}`). The JSON format is
//! hand-written as a small `FormatEvent` because containerd (go-runc) parses exactly
//! these keys to surface a runtime's last error, and tracing-subscriber's built-in JSON
//! uses different ones (`fields.message`, `timestamp`, upper-case levels).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

/// Installs the global subscriber. Level: debug with `--debug`, else info when logging to
/// a file and warn on stderr (stderr is shared with the container in `create`/`run`).
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) -> io::Result<()> {
    let level = match (debug, log.is_some()) {
        (true, _) => Level::DEBUG,
        (false, true) => Level::INFO,
        (false, false) => Level::WARN,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false);
    let result = match (log, format) {
        (Some(path), fmt) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let b = builder.with_writer(Mutex::new(file));
            match fmt {
                LogFormat::Json => b.event_format(RuncJson).try_init(),
                LogFormat::Text => b.try_init(),
            }
        }
        (None, LogFormat::Json) => builder
            .with_writer(io::stderr)
            .event_format(RuncJson)
            .try_init(),
        (None, LogFormat::Text) => builder.with_writer(io::stderr).try_init(),
    };
    result.map_err(|e| io::Error::other(e.to_string()))
}

/// runc's JSON log line format.
struct RuncJson;

impl<S, N> FormatEvent<S, N> for RuncJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = FieldsToJson(Map::new());
        event.record(&mut fields);
        let mut obj = Map::new();
        obj.insert(
            "level".into(),
            Value::from(event.metadata().level().as_str().to_ascii_lowercase()),
        );
        obj.insert(
            "msg".into(),
            fields.0.remove("message").unwrap_or(Value::from("")),
        );
        obj.insert("time".into(), Value::from(crate::timefmt::now_rfc3339()));
        obj.extend(fields.0);
        writeln!(writer, "{}", Value::Object(obj))
    }
}

struct FieldsToJson(Map<String, Value>);

impl Visit for FieldsToJson {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
}
