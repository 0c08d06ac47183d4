//! The web client (`web-client/*.js`, plain ES modules with no build step) copies the
//! protocol's names and limits by hand. This reads those `export const` lines and checks
//! each against the protocol crate, so a change on one side that is not made on the other
//! fails here, naming the constant.

use std::path::PathBuf;

use sightline_protocol::control::{
    ApplyMode, CameraSettings, Capability, CommandType, ControlPath, BUILT_IN_PRESETS,
    CHANNEL_LABEL, MAX_CONTROL_MESSAGE_BYTES, MAX_PRESET_NAME_LEN, MAX_SCHEDULE_ENTRIES, VERSION,
};
use sightline_protocol::wire::{ClientMessage, ServerMessage, SourceState, RESUME_CLOSE_CODE};

/// One web-client file's text, and the differences found in it.
struct JsFile {
    name: &'static str,
    text: String,
    mismatches: Vec<String>,
}

impl JsFile {
    fn read(name: &'static str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../web-client")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        JsFile {
            name,
            text,
            mismatches: Vec::new(),
        }
    }

    /// The initializer of `export const NAME = ...;`, up to the `;` that ends the statement,
    /// without its comments.
    fn init(&self, constant: &str) -> String {
        let start = format!("export const {constant} =");
        let at = self
            .text
            .lines()
            .scan(0, |offset, line| {
                let here = *offset;
                *offset += line.len() + 1;
                Some((here, line))
            })
            .find(|(_, line)| line.starts_with(&start))
            .map(|(offset, _)| offset + start.len())
            .unwrap_or_else(|| {
                panic!(
                    "web-client/{}: no `export const {constant} = ...` line",
                    self.name
                )
            });
        let mut chars = self.text[at..].chars().peekable();
        let (mut out, mut depth, mut quote) = (String::new(), 0i32, None);
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '/') if chars.peek() == Some(&'/') => {
                    chars.by_ref().find(|&d| d == '\n');
                    continue;
                }
                (None, '/') if chars.peek() == Some(&'*') => {
                    chars.next();
                    let mut last = ' ';
                    chars
                        .by_ref()
                        .find(|&d| std::mem::replace(&mut last, d) == '*' && d == '/');
                    continue;
                }
                (None, '\'' | '"' | '`') => quote = Some(c),
                (None, '(' | '[' | '{') => depth += 1,
                (None, ')' | ']' | '}') => depth -= 1,
                (None, ';') if depth == 0 => return out.trim().to_owned(),
                _ => {}
            }
            out.push(c);
        }
        panic!(
            "web-client/{}: `export const {constant}` has no ending `;`",
            self.name
        )
    }

    /// A number, written plainly or as a product (`16 * 1024`).
    fn number(&self, constant: &str) -> u64 {
        let init = self.init(constant);
        init.split('*')
            .map(|f| {
                f.trim().parse::<u64>().unwrap_or_else(|_| {
                    panic!(
                        "web-client/{}: `{constant}` = `{init}` is not a number this test reads",
                        self.name
                    )
                })
            })
            .product()
    }

    /// Every quoted string in the initializer, in order: the items of a frozen array, or the
    /// values of an object whose keys are bare names.
    fn strings(&self, constant: &str) -> Vec<String> {
        quoted(&self.init(constant))
    }

    fn check<T: PartialEq + std::fmt::Debug>(
        &mut self,
        constant: &str,
        js: T,
        rust: T,
        rust_name: &str,
    ) {
        if js != rust {
            self.mismatches.push(format!(
                "web-client/{}: `{constant}` is {js:?}, but the protocol's {rust_name} is {rust:?}",
                self.name
            ));
        }
    }

    fn finish(self) {
        assert!(
            self.mismatches.is_empty(),
            "the web client and sightline-protocol disagree; update one of them:\n  {}",
            self.mismatches.join("\n  ")
        );
    }
}

/// The contents of every '...' or "..." string in `text`, in order.
fn quoted(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\'' || c == '"' {
            out.push(chars.by_ref().take_while(|&d| d != c).collect());
        }
    }
    out
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// `all` without the ones in `except`.
fn without(all: &[&str], except: &[&str]) -> Vec<String> {
    owned(all)
        .into_iter()
        .filter(|t| !except.contains(&t.as_str()))
        .collect()
}

#[test]
fn control_js_matches_the_control_protocol() {
    let mut js = JsFile::read("control.js");
    js.check(
        "CONTROL_VERSION",
        js.number("CONTROL_VERSION"),
        VERSION,
        "control::VERSION",
    );
    let label = js.strings("CONTROL_LABEL");
    js.check(
        "CONTROL_LABEL",
        label,
        vec![CHANNEL_LABEL.to_owned()],
        "control::CHANNEL_LABEL",
    );
    js.check(
        "MAX_CONTROL_MESSAGE_BYTES",
        js.number("MAX_CONTROL_MESSAGE_BYTES"),
        MAX_CONTROL_MESSAGE_BYTES as u64,
        "control::MAX_CONTROL_MESSAGE_BYTES",
    );
    let commands = js.strings("COMMANDS");
    js.check(
        "COMMANDS",
        commands,
        owned(CommandType::NAMES),
        "CommandType::NAMES",
    );
    let view_only = js.strings("VIEW_ONLY_COMMANDS");
    let may_send: Vec<&str> = CommandType::ALL
        .iter()
        .filter(|t| t.view_only_may_send())
        .map(|t| t.name())
        .collect();
    js.check(
        "VIEW_ONLY_COMMANDS",
        view_only,
        owned(&may_send),
        "CommandType::view_only_may_send",
    );
    let capability_types = js.strings("CAPABILITY_TYPES");
    js.check(
        "CAPABILITY_TYPES",
        capability_types,
        owned(Capability::TYPES),
        "Capability::TYPES",
    );
    let apply_modes = js.strings("APPLY_MODES");
    let modes: Vec<&str> = ApplyMode::ALL.iter().map(|m| m.as_str()).collect();
    js.check("APPLY_MODES", apply_modes, owned(&modes), "ApplyMode::ALL");
    let paths = js.strings("CONTROL_PATHS");
    js.check(
        "CONTROL_PATHS",
        paths,
        owned(ControlPath::NAMES),
        "ControlPath::NAMES",
    );
    js.finish();
}

#[test]
fn signaling_js_matches_the_wire_types() {
    let mut js = JsFile::read("signaling.js");
    // `Client` builds the messages a viewer sends: `{ type: 'list' }`, ...
    let client = js.init("Client");
    let mut sent: Vec<String> = client
        .split("type:")
        .skip(1)
        .filter_map(|after| quoted(after).into_iter().next())
        .collect();
    sent.dedup();
    js.check(
        "Client",
        sorted(sent),
        sorted(without(
            ClientMessage::TYPES,
            ClientMessage::PUBLISHER_ONLY_TYPES,
        )),
        "ClientMessage::TYPES except PUBLISHER_ONLY_TYPES",
    );
    let server_types = js.strings("ServerType");
    js.check(
        "ServerType",
        sorted(server_types),
        sorted(without(
            ServerMessage::TYPES,
            ServerMessage::PUBLISHER_ONLY_TYPES,
        )),
        "ServerMessage::TYPES except PUBLISHER_ONLY_TYPES",
    );
    let close_code = js.number("RESUME_CLOSE_CODE");
    js.check(
        "RESUME_CLOSE_CODE",
        close_code,
        u64::from(RESUME_CLOSE_CODE),
        "RESUME_CLOSE_CODE",
    );
    let states = js.strings("SourceState");
    let rust_states: Vec<&str> = SourceState::ALL.iter().map(|s| s.as_str()).collect();
    js.check(
        "SourceState",
        states,
        owned(&rust_states),
        "SourceState::ALL",
    );
    js.finish();
}

#[test]
fn presets_and_settings_js_match_the_control_protocol() {
    let mut presets = JsFile::read("presets.js");
    presets.check(
        "MAX_PRESET_NAME_LEN",
        presets.number("MAX_PRESET_NAME_LEN"),
        MAX_PRESET_NAME_LEN as u64,
        "control::MAX_PRESET_NAME_LEN",
    );
    let built_in = presets.strings("BUILT_IN_PRESETS");
    presets.check(
        "BUILT_IN_PRESETS",
        built_in,
        owned(BUILT_IN_PRESETS),
        "control::BUILT_IN_PRESETS",
    );
    presets.finish();
    let mut panel = JsFile::read("controlpanel.js");
    let order = panel.strings("SETTING_ORDER");
    panel.check(
        "SETTING_ORDER",
        order,
        owned(CameraSettings::NAMES),
        "CameraSettings::NAMES",
    );
    panel.finish();
    let mut schedule = JsFile::read("schedule.js");
    schedule.check(
        "MAX_SCHEDULE_ENTRIES",
        schedule.number("MAX_SCHEDULE_ENTRIES"),
        MAX_SCHEDULE_ENTRIES as u64,
        "control::MAX_SCHEDULE_ENTRIES",
    );
    schedule.finish();
}

#[test]
fn the_reader_reads_what_the_web_client_writes() {
    assert_eq!(
        quoted(r#"Object.freeze(['a', "b", 'c d'])"#),
        ["a", "b", "c d"]
    );
    let js = JsFile {
        name: "inline.js",
        text: "export const N = 16 * 1024;\nexport const O = Object.freeze({\n  // the server's\n  x: 'y', /* it's */\n  f: () => ({ type: 'z' }),\n});\n"
            .into(),
        mismatches: Vec::new(),
    };
    assert_eq!(js.number("N"), 16384);
    assert_eq!(js.strings("O"), ["y", "z"]);
}
