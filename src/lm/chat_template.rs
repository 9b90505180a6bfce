//! The model's own chat template: the Jinja program shipped in the GGUF
//! (`tokenizer.chat_template`) or in `tokenizer_config.json`, rendered with
//! MiniJinja the way Hugging Face `apply_chat_template` renders it (messages
//! as `{role, content}` maps, `add_generation_prompt`, `bos_token`,
//! `eos_token`, `raise_exception`, and Python string methods such as
//! `.strip()` through `minijinja_contrib::pycompat`).
//!
//! Rendering is how a prompt gets the template's default system turn
//! (SmolLM2 adds one when no system message is given), Gemma's
//! `<start_of_turn>`/`<end_of_turn>` and every other model's layout without
//! code of ours per model. Message contents are rendered as marked spans so
//! that the tokenizer can encode user text as plain text: control tokens come
//! from the template only ([`RenderedChat::segments`]).

use anyhow::{anyhow, bail, Result};
use minijinja::{context, Environment, Error, ErrorKind};

/// ChatML, for models that ship no template but have its control tokens.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// For models without any chat format: the contents, one blank line apart.
pub const PLAIN_TEMPLATE: &str = "{% for message in messages %}{{ message['content'] }}\n\n{% endfor %}";

/// Who speaks a chat message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChatRole {
    /// Instructions before the conversation.
    System,
    /// The user's turn.
    User,
    /// The model's turn.
    Assistant,
}

impl ChatRole {
    /// The name templates compare against (`system`, `user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

/// Marks around a message's content in a render (Unicode private-use
/// characters, which no template writes itself).
const OPEN: char = '\u{F8F0}';
const CLOSE: char = '\u{F8F1}';

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    /// Where the template came from, for errors (e.g. the GGUF's path and
    /// key).
    origin: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("origin", &self.origin).finish()
    }
}

impl Clone for ChatTemplate {
    fn clone(&self) -> Self {
        ChatTemplate::new(&self.source, &self.origin).expect("compiled once already")
    }
}

/// One piece of a rendered chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Text the template wrote: its control tokens are meant.
    Template(String),
    /// A message's content: always plain text, whatever it contains.
    Content(String),
}

/// A rendered conversation, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedChat {
    /// Template text and message contents, alternating as rendered.
    pub segments: Vec<Segment>,
}

impl RenderedChat {
    /// The whole prompt text.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Template(t) | Segment::Content(t) => t.as_str(),
            })
            .collect()
    }
}

impl ChatTemplate {
    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Compiles `source`; `origin` names it in errors.
    ///
    /// # Errors
    /// A Jinja syntax error, naming `origin`.
    pub fn new(source: &str, origin: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat".to_string(), source.to_string())
            .map_err(|e| anyhow!("{origin}: the chat template does not compile: {e}"))?;
        Ok(ChatTemplate { env, source: source.to_string(), origin: origin.to_string() })
    }

    /// Renders `messages`, each content trimmed of surrounding whitespace
    /// (templates such as Gemma's trim it themselves), with the assistant's
    /// opening appended when `add_generation_prompt`.
    ///
    /// # Errors
    /// The template's own `raise_exception` (e.g. Gemma refusing a role) or
    /// a render error, naming the template's origin; a content holding the
    /// private-use marks this renderer uses.
    pub fn render(
        &self,
        messages: &[(ChatRole, &str)],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<RenderedChat> {
        let mut contents = Vec::with_capacity(messages.len());
        let mut values = Vec::with_capacity(messages.len());
        for (i, (role, content)) in messages.iter().enumerate() {
            if content.contains(OPEN) || content.contains(CLOSE) {
                bail!("message {i} contains the characters U+F8F0/U+F8F1, which the chat renderer reserves");
            }
            let c = content.trim();
            contents.push(c.to_string());
            values.push(context! { role => role.as_str(), content => format!("{OPEN}{i}{CLOSE}") });
        }
        let tmpl = self.env.get_template("chat").expect("compiled at construction");
        let text = tmpl
            .render(context! {
                messages => values,
                add_generation_prompt => add_generation_prompt,
                bos_token => bos_token,
                eos_token => eos_token,
            })
            .map_err(|e| anyhow!("{}: rendering the chat template: {e}", self.origin))?;
        let mut segments = Vec::new();
        let mut rest = text.as_str();
        while let Some(open) = rest.find(OPEN) {
            if open > 0 {
                segments.push(Segment::Template(rest[..open].to_string()));
            }
            let after = &rest[open + OPEN.len_utf8()..];
            let close = after
                .find(CLOSE)
                .ok_or_else(|| anyhow!("{}: the chat template cut a message's content", self.origin))?;
            let index: usize = after[..close]
                .parse()
                .map_err(|_| anyhow!("{}: the chat template altered a message's content", self.origin))?;
            let content = contents
                .get(index)
                .ok_or_else(|| anyhow!("{}: the chat template altered a message's content", self.origin))?;
            segments.push(Segment::Content(content.clone()));
            rest = &after[close + CLOSE.len_utf8()..];
        }
        if rest.contains(CLOSE) {
            bail!("{}: the chat template altered a message's content", self.origin);
        }
        if !rest.is_empty() {
            segments.push(Segment::Template(rest.to_string()));
        }
        Ok(RenderedChat { segments })
    }

    /// The template text that closes an assistant turn (what follows the
    /// answer: `<|im_end|>\n` for ChatML, `<end_of_turn>\n` for Gemma), read
    /// off a render of one user and one assistant message.
    ///
    /// # Errors
    /// As [`ChatTemplate::render`].
    pub fn assistant_turn_end(&self, bos_token: &str, eos_token: &str) -> Result<String> {
        let chat = self.render(&[(ChatRole::User, "u"), (ChatRole::Assistant, "a")], false, bos_token, eos_token)?;
        let mut after = String::new();
        let mut seen = false;
        for s in &chat.segments {
            match s {
                Segment::Content(c) if c == "a" => seen = true,
                Segment::Template(t) if seen => after.push_str(t),
                _ => {}
            }
        }
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// Gemma's layout: system folded into the first user turn, `model` role,
    /// `.strip()` through pycompat, `raise_exception` on a bad role.
    const GEMMA: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% elif message['role'] == 'user' %}{% set role = 'user' %}{% else %}{{ raise_exception('Conversation roles must be user/assistant') }}{% endif %}{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') + message['content'].strip() + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

    #[test]
    fn smollm2_adds_its_default_system_turn() {
        let t = ChatTemplate::new(SMOLLM2, "test").unwrap();
        let chat = t.render(&[(ChatRole::User, "Hi")], true, "", "").unwrap();
        assert_eq!(
            chat.text(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let with = t.render(&[(ChatRole::System, "Be brief."), (ChatRole::User, "Hi")], true, "", "").unwrap();
        assert!(with.text().starts_with("<|im_start|>system\nBe brief.<|im_end|>"));
        assert_eq!(t.assistant_turn_end("", "").unwrap(), "<|im_end|>\n");
    }

    #[test]
    fn contents_are_kept_apart_from_the_template_text() {
        let t = ChatTemplate::new(SMOLLM2, "test").unwrap();
        let chat = t.render(&[(ChatRole::User, "say <|im_end|> now")], true, "", "").unwrap();
        let contents: Vec<_> = chat
            .segments
            .iter()
            .filter_map(|s| if let Segment::Content(c) = s { Some(c.as_str()) } else { None })
            .collect();
        assert_eq!(contents, ["say <|im_end|> now"]);
        assert!(chat.segments.iter().all(|s| !matches!(s, Segment::Template(t) if t.contains("say"))));
    }

    #[test]
    fn gemma_turns_and_its_end_of_turn() {
        let t = ChatTemplate::new(GEMMA, "test").unwrap();
        let chat = t.render(&[(ChatRole::System, "S"), (ChatRole::User, " Hi ")], true, "<bos>", "<eos>").unwrap();
        assert_eq!(chat.text(), "<bos><start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n");
        assert_eq!(t.assistant_turn_end("<bos>", "<eos>").unwrap(), "<end_of_turn>\n");
    }

    #[test]
    fn template_errors_name_the_origin() {
        let e = ChatTemplate::new("{% for %}", "model.gguf: tokenizer.chat_template").unwrap_err();
        assert!(e.to_string().contains("model.gguf: tokenizer.chat_template"), "{e}");
        let t = ChatTemplate::new(GEMMA, "gemma.gguf").unwrap();
        let e = t.render(&[(ChatRole::Assistant, "a"), (ChatRole::System, "s")], true, "", "").unwrap_err();
        assert!(format!("{e:#}").contains("roles must be user/assistant"), "{e:#}");
    }
}
