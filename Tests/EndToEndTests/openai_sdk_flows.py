"""Drives the platform's /v1 API with the official `openai` Python package, as a customer's app does.

    python openai_sdk_flows.py CONFIG_JSON SCENARIO...

CONFIG_JSON is one JSON object: `base_url` (the platform's /v1) and `api_key`, plus what some
scenarios need (`chat_model`, `audio`, `bad_key`, `revoked_key`, `narrow_key`, `quota_key`,
`rate_limit`, `second_base_url`, `revocation_timeout`). Each scenario checks what the SDK answered
and returns what it saw, for the Swift suite to compare with what reached the fake provider.
Prints one JSON object, {"sdk_version", "results": {scenario: …}, "failures": {scenario: text}},
and exits 1 when any scenario failed.
"""

import base64
import json
import struct
import sys
import time
import traceback

import openai

CHAT_MODEL = "gpt-test"
EMBEDDING_MODEL = "text-embedding-3-small"


class CheckFailed(Exception):
    pass


def check(condition, message):
    """A real assertion that `python -O` keeps."""
    if not condition:
        raise CheckFailed(message)


class Attempts:
    """Counts the HTTP requests the SDK sends, retries included, through httpx's event hooks."""

    def __init__(self):
        self.count = 0

    def __call__(self, request):
        self.count += 1


def client(config, api_key=None, base_url=None, max_retries=2, attempts=None):
    # The SDK's own HTTP client class, so its defaults stay; trust_env=False keeps a proxy set in
    # the environment away from loopback.
    hooks = {"request": [attempts]} if attempts else {}
    http_client = openai.DefaultHttpxClient(trust_env=False, event_hooks=hooks)
    return openai.OpenAI(
        base_url=base_url or config["base_url"], api_key=api_key or config["api_key"],
        max_retries=max_retries, timeout=30, http_client=http_client,
    )


def user(text):
    return [{"role": "user", "content": text}]


def expect_error(error_class, call):
    """Runs `call`, which must raise exactly `error_class`; answers the exception."""
    try:
        call()
    except openai.APIStatusError as error:
        check(type(error) is error_class, f"expected {error_class.__name__}, got {type(error).__name__}: {error}")
        return error
    raise CheckFailed(f"expected {error_class.__name__}, but the call succeeded")


def error_summary(error, attempts=None):
    summary = {
        "class": type(error).__name__, "status": error.status_code, "code": error.code,
        "type": error.type, "param": error.param, "request_id": error.request_id,
    }
    if attempts is not None:
        summary["attempts"] = attempts.count
    return summary


# MARK: - Chat


def chat(config):
    reply = client(config).chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello sdk"}],
        temperature=0.25, top_p=0.5, max_tokens=7, seed=42, user="sdk-user-1", stop=["zzz"], n=1,
        extra_body={"x_future_field": {"kept": True}},
    )
    check(isinstance(reply, openai.types.chat.ChatCompletion), f"not a ChatCompletion: {type(reply)}")
    check(reply.object == "chat.completion", f"object {reply.object!r}")
    check(len(reply.choices) == 1, f"{len(reply.choices)} choices")
    choice = reply.choices[0]
    check(choice.message.role == "assistant", f"role {choice.message.role!r}")
    check(choice.message.content == "echo: hello sdk", f"content {choice.message.content!r}")
    check(choice.finish_reason == "stop", f"finish_reason {choice.finish_reason!r}")
    usage = reply.usage
    check(usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (4, 3, 7), f"usage {usage}")
    return {"id": reply.id, "model": reply.model, "content": choice.message.content}


def stream_chunks(config, text, **options):
    stream = client(config).chat.completions.create(model=CHAT_MODEL, messages=user(text), stream=True, **options)
    chunks = list(stream)
    check(len(chunks) >= 2, f"{len(chunks)} chunks")
    for chunk in chunks:
        check(isinstance(chunk, openai.types.chat.ChatCompletionChunk), f"not a ChatCompletionChunk: {type(chunk)}")
        check(chunk.object == "chat.completion.chunk", f"object {chunk.object!r}")
    return chunks


def streamed_text(chunks):
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def stream(config):
    chunks = stream_chunks(config, "one two three")
    check(all(chunk.usage is None for chunk in chunks), "a usage chunk came though include_usage was not asked")
    check(all(len(chunk.choices) == 1 for chunk in chunks), "a chunk without choices")
    check(streamed_text(chunks) == "echo: one two three", f"text {streamed_text(chunks)!r}")
    check(chunks[-1].choices[0].finish_reason == "stop", f"last finish_reason {chunks[-1].choices[0].finish_reason!r}")
    return {"chunks": len(chunks), "text": streamed_text(chunks)}


def stream_usage(config):
    chunks = stream_chunks(config, "four five", stream_options={"include_usage": True})
    last = chunks[-1]
    check(last.choices == [], f"the usage chunk has choices: {last.choices}")
    check(last.usage is not None, "no usage on the final chunk")
    check((last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (2, 3, 5), f"usage {last.usage}")
    check(all(chunk.usage is None for chunk in chunks[:-1]), "usage before the final chunk")
    check(streamed_text(chunks) == "echo: four five", f"text {streamed_text(chunks)!r}")
    return {"chunks": len(chunks), "total_tokens": last.usage.total_tokens}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather", "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def tools(config):
    sdk = client(config)
    messages = user("what is the weather in paris")
    first = sdk.chat.completions.create(model=CHAT_MODEL, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto")
    choice = first.choices[0]
    check(choice.finish_reason == "tool_calls", f"finish_reason {choice.finish_reason!r}")
    calls = choice.message.tool_calls or []
    check(len(calls) == 1, f"{len(calls)} tool calls")
    call = calls[0]
    check(call.type == "function" and call.function.name == "weather", f"tool call {call}")
    check(json.loads(call.function.arguments) == {"city": "Paris"}, f"arguments {call.function.arguments!r}")
    # As apps do: the assistant's message as the SDK parsed it, then the tool's answer.
    messages += [choice.message, {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
    second = sdk.chat.completions.create(model=CHAT_MODEL, messages=messages, tools=[WEATHER_TOOL])
    answer = second.choices[0]
    check(answer.message.content == "echo: 18C and sunny", f"content {answer.message.content!r}")
    check(answer.finish_reason == "stop" and not answer.message.tool_calls, f"second answer {answer}")
    return {"tool_call_id": call.id, "arguments": call.function.arguments, "content": answer.message.content}


def chat_model(config):
    sdk = client(config)
    reply = sdk.chat.completions.create(model=config["chat_model"], messages=user("where is the gold"))
    content = reply.choices[0].message.content
    check(content == "echo: Arr: where is the gold", f"content {content!r}")
    chunks = list(sdk.chat.completions.create(model=config["chat_model"], messages=user("where is the ship"), stream=True))
    check(streamed_text(chunks) == "echo: Arr: where is the ship", f"streamed {streamed_text(chunks)!r}")
    return {"content": content, "streamed": streamed_text(chunks)}


# MARK: - Embeddings


def float32s(encoded):
    raw = base64.b64decode(encoded)
    check(len(raw) % 4 == 0, f"{len(raw)} bytes is not a whole number of float32s")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def embeddings(config):
    sdk = client(config)
    inputs = ["a b", "c"]
    # Without encoding_format the SDK asks for base64 and decodes it to floats itself.
    default = sdk.embeddings.create(model=EMBEDDING_MODEL, input=inputs)
    check(default.object == "list" and [item.index for item in default.data] == [0, 1], f"data {default.data}")
    check(default.usage.prompt_tokens == 3, f"usage {default.usage}")
    vectors = [item.embedding for item in default.data]
    check(all(isinstance(v, list) and len(v) == 8 and all(isinstance(x, float) for x in v) for v in vectors), f"vectors {vectors}")
    as_floats = sdk.embeddings.create(model=EMBEDDING_MODEL, input=inputs, encoding_format="float")
    for vector, item in zip(vectors, as_floats.data):
        check(all(abs(a - b) < 1e-6 for a, b in zip(vector, item.embedding)), f"float {item.embedding} differs from base64 {vector}")
    as_base64 = sdk.embeddings.create(model=EMBEDDING_MODEL, input=inputs, encoding_format="base64")
    for vector, item in zip(vectors, as_base64.data):
        check(isinstance(item.embedding, str), f"base64 asked, got {type(item.embedding)}")
        check(float32s(item.embedding) == vector, f"base64 {item.embedding!r} does not decode to {vector}")
    single = sdk.embeddings.create(model=EMBEDDING_MODEL, input="a b")
    check(single.data[0].embedding == vectors[0], "the same text embedded alone differs")
    return {"vectors": vectors}


# MARK: - Audio


def transcription(config):
    sdk = client(config)
    with open(config["audio"], "rb") as audio:
        as_json = sdk.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="json", language="en", prompt="a tone", temperature=0.2,
        )
    check(isinstance(as_json, openai.types.audio.Transcription), f"not a Transcription: {type(as_json)}")
    check(as_json.text == "hello from the fake provider", f"json text {as_json.text!r}")
    with open(config["audio"], "rb") as audio:
        as_text = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="text")
    check(isinstance(as_text, str) and as_text.strip() == "hello from the fake provider", f"text {as_text!r}")
    with open(config["audio"], "rb") as audio:
        verbose = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json", language="en")
    check(verbose.text == "hello from the fake provider" and verbose.language == "en", f"verbose_json {verbose}")
    return {"json": as_json.text, "text": as_text, "verbose_language": verbose.language}


def translation(config):
    with open(config["audio"], "rb") as audio:
        translated = client(config).audio.translations.create(model="whisper-1", file=audio, prompt="a tone")
    check(translated.text == "translated: hello from the fake provider", f"text {translated.text!r}")
    return {"text": translated.text}


def speech(config):
    sdk = client(config)
    mp3 = sdk.audio.speech.create(model="tts-1", voice="alloy", input="say this")
    check(mp3.content.startswith(b"ID3") and b"say this" in mp3.content, f"mp3 {mp3.content[:16]!r}… ({len(mp3.content)} bytes)")
    check(mp3.response.headers.get("content-type") == "audio/mpeg", f"content-type {mp3.response.headers.get('content-type')!r}")
    flac = sdk.audio.speech.create(model="tts-1", voice="nova", input="say that", response_format="flac", speed=1.25)
    check(flac.content.startswith(b"fLaC"), f"flac {flac.content[:16]!r}")
    return {"mp3_bytes": len(mp3.content), "flac_bytes": len(flac.content)}


# MARK: - Models


def models(config):
    sdk = client(config)
    listed = sdk.models.list()
    ids = [model.id for model in listed.data]
    check(CHAT_MODEL in ids and config["chat_model"] in ids, f"ids {ids}")
    check(all(model.object == "model" for model in listed.data), "an entry that is not a model")
    provider_model = sdk.models.retrieve(CHAT_MODEL)
    check(provider_model.id == CHAT_MODEL and provider_model.owned_by == "openai", f"retrieved {provider_model}")
    persona = sdk.models.retrieve(config["chat_model"])
    check(persona.id == config["chat_model"], f"retrieved {persona}")
    missing = expect_error(openai.NotFoundError, lambda: sdk.models.retrieve("no-such-model"))
    return {"ids": ids, "missing": error_summary(missing)}


# MARK: - Errors


def chat_call(sdk, model=CHAT_MODEL, text="hi"):
    return lambda: sdk.chat.completions.create(model=model, messages=user(text))


def bad_key(config):
    attempts = Attempts()
    sdk = client(config, api_key="sk-" + "a" * 48, attempts=attempts)
    error = expect_error(openai.AuthenticationError, chat_call(sdk))
    check(error.status_code == 401 and error.code == "invalid_api_key", f"{error.status_code} {error.code}")
    check(error.request_id, "no x-request-id on the error")
    check(attempts.count == 1, f"{attempts.count} attempts")
    listing = expect_error(openai.AuthenticationError, lambda: sdk.models.list())
    return {"chat": error_summary(error, attempts), "models": error_summary(listing)}


def revoked_key(config):
    sdk = client(config, api_key=config["revoked_key"])
    error = expect_error(openai.AuthenticationError, chat_call(sdk))
    check(error.code == "invalid_api_key", f"code {error.code!r}")
    return error_summary(error)


def forbidden_model(config):
    sdk = client(config, api_key=config["narrow_key"])
    ok = sdk.chat.completions.create(model=CHAT_MODEL, messages=user("allowed"))
    check(ok.choices[0].message.content == "echo: allowed", f"the allowed model answered {ok}")
    error = expect_error(openai.PermissionDeniedError, lambda: sdk.embeddings.create(model=EMBEDDING_MODEL, input="x"))
    check(error.status_code == 403 and error.code == "model_not_allowed", f"{error.status_code} {error.code}")
    speech_error = expect_error(openai.PermissionDeniedError, lambda: sdk.audio.speech.create(model="tts-1", voice="alloy", input="x"))
    listed = [model.id for model in sdk.models.list().data]
    return {"embeddings": error_summary(error), "speech": error_summary(speech_error), "listed": listed}


def unknown_model(config):
    error = expect_error(openai.NotFoundError, chat_call(client(config), model="gpt-nothing"))
    check(error.code == "model_not_found" and error.param == "model", f"{error.code} {error.param}")
    return error_summary(error)


def bad_body(config):
    sdk = client(config)
    no_messages = expect_error(openai.BadRequestError, lambda: sdk.chat.completions.create(model=CHAT_MODEL, messages=[]))
    check(no_messages.param == "messages" and no_messages.type == "invalid_request_error", f"{no_messages.param} {no_messages.type}")
    no_role = expect_error(
        openai.BadRequestError, lambda: sdk.chat.completions.create(model=CHAT_MODEL, messages=[{"content": "who am i"}]),
    )
    check(no_role.param == "messages[0].role", f"param {no_role.param!r}")
    no_input = expect_error(openai.BadRequestError, lambda: sdk.embeddings.create(model=EMBEDDING_MODEL, input=[]))
    check(no_input.param == "input", f"param {no_input.param!r}")
    return {"messages": error_summary(no_messages), "role": error_summary(no_role), "input": error_summary(no_input)}


def spent_quota(config):
    # Default max_retries (2): the platform's x-should-retry: false must keep the SDK from retrying.
    attempts = Attempts()
    sdk = client(config, api_key=config["quota_key"], attempts=attempts)
    error = expect_error(openai.RateLimitError, chat_call(sdk, text="one more please"))
    check(error.status_code == 429 and error.code == "insufficient_quota", f"{error.status_code} {error.code}")
    check(error.response.headers.get("x-should-retry") == "false", f"x-should-retry {error.response.headers.get('x-should-retry')!r}")
    check(attempts.count == 1, f"the SDK sent {attempts.count} attempts")
    return error_summary(error, attempts)


def rate_limit(config):
    limit = int(config["rate_limit"])
    sdk = client(config)
    seen = []
    for index in range(limit):
        raw = sdk.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=user(f"call {index}"))
        headers = {name: raw.headers.get(f"x-ratelimit-{name}-requests") for name in ("limit", "remaining", "reset")}
        check(headers["limit"] == str(limit), f"call {index}: limit {headers['limit']!r}")
        check(headers["remaining"] == str(limit - index - 1), f"call {index}: remaining {headers['remaining']!r}")
        check((headers["reset"] or "").endswith("s"), f"call {index}: reset {headers['reset']!r}")
        completion = raw.parse()
        check(completion.choices[0].message.content == f"echo: call {index}", f"call {index}: {completion}")
        seen.append(headers)
    attempts = Attempts()
    error = expect_error(openai.RateLimitError, chat_call(client(config, max_retries=0, attempts=attempts), text="too many"))
    headers = error.response.headers
    check(error.code == "rate_limit_exceeded", f"code {error.code!r}")
    check(int(headers.get("retry-after", "0")) >= 1, f"retry-after {headers.get('retry-after')!r}")
    check(headers.get("x-ratelimit-limit-requests") == str(limit), f"limit {headers.get('x-ratelimit-limit-requests')!r}")
    check(headers.get("x-ratelimit-remaining-requests") == "0", f"remaining {headers.get('x-ratelimit-remaining-requests')!r}")
    check(attempts.count == 1, f"{attempts.count} attempts with max_retries=0")
    return {"headers": seen, "refused": error_summary(error, attempts), "retry_after": headers.get("retry-after")}


# MARK: - Revocation across gateways


def answers(sdk, text):
    reply = sdk.chat.completions.create(model=CHAT_MODEL, messages=user(text))
    check(reply.choices[0].message.content == f"echo: {text}", f"reply {reply}")


def key_works_on_both(config):
    answers(client(config), "via gateway a")
    answers(client(config, base_url=config["second_base_url"]), "via gateway b")
    return {"a": True, "b": True}


def revoked_on_both(config):
    first = expect_error(openai.AuthenticationError, chat_call(client(config, max_retries=0), text="a after revoke"))
    other = client(config, base_url=config["second_base_url"], max_retries=0)
    started = time.monotonic()
    deadline = started + float(config["revocation_timeout"])
    accepted = 0
    while True:
        try:
            other.chat.completions.create(model=CHAT_MODEL, messages=user("b after revoke"))
            accepted += 1
        except openai.AuthenticationError as error:
            return {"a": error_summary(first), "b": error_summary(error), "b_seconds": time.monotonic() - started, "b_accepted": accepted}
        check(time.monotonic() < deadline, f"gateway B still accepts the revoked key after {config['revocation_timeout']} s")
        time.sleep(0.1)


SCENARIOS = {
    function.__name__: function
    for function in [
        chat, stream, stream_usage, tools, chat_model, embeddings, transcription, translation, speech, models,
        bad_key, revoked_key, forbidden_model, unknown_model, bad_body, spent_quota, rate_limit,
        key_works_on_both, revoked_on_both,
    ]
}


def main(argv):
    if len(argv) < 3 or any(name not in SCENARIOS for name in argv[2:]):
        print(f"usage: {argv[0]} CONFIG_JSON SCENARIO... (scenarios: {', '.join(SCENARIOS)})", file=sys.stderr)
        return 2
    config = json.loads(argv[1])
    results, failures = {}, {}
    for name in argv[2:]:
        try:
            results[name] = SCENARIOS[name](config)
        except Exception as error:  # every failure is reported, then the next scenario runs
            failures[name] = f"{type(error).__name__}: {error}"
            print(f"scenario {name} failed:\n{traceback.format_exc()}", file=sys.stderr)
    print(json.dumps({"sdk_version": openai.__version__, "results": results, "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
