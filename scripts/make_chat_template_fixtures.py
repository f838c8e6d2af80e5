"""Writes Tests/Fixtures/chat_templates/cases.json: chat templates rendered by transformers 5.23's own machinery.

- "renders": real chat templates (Idefics2's from Tests/Fixtures/tokenizer, and copies of widely used templates
  reconstructed from their tokenizer_config.json files) applied to several conversations with
  PreTrainedTokenizerFast.apply_chat_template(tokenize=False); a template that calls raise_exception records the
  message instead of the output.
- "semantics": small templates for tricky jinja2 behavior, rendered in transformers' sandboxed environment.
- "syntax_errors": templates jinja2 rejects, with the line jinja2 reports.
- "strftime": strftime_now's directives for a fixed UTC time.

Python tuples print as "(a, b)"; the Swift interpreter has lists only, so cases print tuples through filters.
Dict keys are sorted, after role, content and type (messages: role, content, then the other keys sorted; parts:
type, then the others) so that the Swift side, which reads
JSON without key order, builds dicts in the same order. Run: .venv/bin/python scripts/make_chat_template_fixtures.py
"""

import json
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from transformers import PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import _compile_jinja_template, render_jinja_template

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = ROOT / "Tests/Fixtures/tokenizer"
OUT = ROOT / "Tests/Fixtures/chat_templates/cases.json"

MISTRAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}

# Templates, verbatim from the models' tokenizer_config.json (as collected in huggingface.js's jinja tests and
# other public copies). Python string escapes here equal the JSON/JS ones they were copied from.
TEMPLATES = {
    "idefics2": (json.loads((TOKENIZER / "chat_template.json").read_text())["chat_template"],
                 {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}),
    # HuggingFaceM4/Idefics3-8B-Llama3
    "idefics3": ("<|begin_of_text|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
                 {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}),
    # meta-llama/Llama-2-7b-chat-hf
    "llama2-chat": ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
                    MISTRAL_TOKENS),
    # meta-llama/Meta-Llama-3-8B-Instruct
    "llama3-instruct": ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
                        {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    # meta-llama/Llama-3.2-1B-Instruct
    "llama3.2-instruct": (r'''{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
''', {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    # mistralai/Mistral-7B-Instruct-v0.1 / Mixtral-8x7B-Instruct-v0.1
    "mistral-instruct-v0.1": ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
                              MISTRAL_TOKENS),
    # HuggingFaceH4/zephyr-7b-beta
    "zephyr": ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
               MISTRAL_TOKENS),
    # Qwen/Qwen2-7B-Instruct (ChatML with a default system message)
    "qwen2-chatml": ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
                     {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    # google/gemma-7b-it
    "gemma-it": ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
                 {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"}),
    # microsoft/Phi-3-mini-4k-instruct
    "phi3": ("{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}",
             {"bos_token": "<s>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}),
    # deepseek-ai/deepseek-coder-33b-instruct (namespace, whitespace control)
    "deepseek-coder": ("{% if not add_generation_prompt is defined %}\n{% set add_generation_prompt = false %}\n{% endif %}\n{%- set ns = namespace(found=false) -%}\n{%- for message in messages -%}\n    {%- if message['role'] == 'system' -%}\n        {%- set ns.found = true -%}\n    {%- endif -%}\n{%- endfor -%}\n{{bos_token}}{%- if not ns.found -%}\n{{'You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you only answer questions related to computer science. For politically sensitive questions, security and privacy issues, and other non-computer science questions, you will refuse to answer\\n'}}\n{%- endif %}\n{%- for message in messages %}\n    {%- if message['role'] == 'system' %}\n{{ message['content'] }}\n    {%- else %}\n        {%- if message['role'] == 'user' %}\n{{'### Instruction:\\n' + message['content'] + '\\n'}}\n        {%- else %}\n{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{% if add_generation_prompt %}\n{{'### Response:'}}\n{% endif %}",
                       {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<|EOT|>"}),
    # meetkai/functionary-medium-v2.2 (newline-heavy: trim_blocks/lstrip_blocks)
    "functionary-v2.2": ("{#v2.2#}\n{% for message in messages %}\n{% if message['role'] == 'user' or message['role'] == 'system' %}\n{{ '<|from|>' + message['role'] + '\n<|recipient|>all\n<|content|>' + message['content'] + '\n' }}{% elif message['role'] == 'tool' %}\n{{ '<|from|>' + message['name'] + '\n<|recipient|>all\n<|content|>' + message['content'] + '\n' }}{% else %}\n{% set contain_content='no'%}\n{% if message['content'] is not none %}\n{{ '<|from|>assistant\n<|recipient|>all\n<|content|>' + message['content'] }}{% set contain_content='yes'%}\n{% endif %}\n{% if 'tool_calls' in message and message['tool_calls'] is not none %}\n{% for tool_call in message['tool_calls'] %}\n{% set prompt='<|from|>assistant\n<|recipient|>' + tool_call['function']['name'] + '\n<|content|>' + tool_call['function']['arguments'] %}\n{% if loop.index == 1 and contain_content == \"no\" %}\n{{ prompt }}{% else %}\n{{ '\n' + prompt}}{% endif %}\n{% endfor %}\n{% endif %}\n{{ '<|stop|>\n' }}{% endif %}\n{% endfor %}\n{% if add_generation_prompt %}{{ '<|from|>assistant\n<|recipient|>' }}{% endif %}",
                         MISTRAL_TOKENS),
    # maywell/PiVoT-MoE (selectattr/list/last, inline if)
    "pivot-moe": ("{{ (messages|selectattr('role', 'equalto', 'system')|list|last).content|trim if (messages|selectattr('role', 'equalto', 'system')|list) else '' }}{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content']|trim }}{% elif message['role'] == 'user' %}### Instruction: {{ message['content']|trim }}{% elif message['role'] == 'assistant' %}### Response: {{ message['content']|trim }}{% elif message['role'] == 'user_context' %}### Input: {{ message['content']|trim }}{% endif %}{% if not loop.last %}\n{% endif %}{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}### Response:{% endif %}",
                  MISTRAL_TOKENS),
    # Not a model's template: shows the messages after transformers' preprocessing (None dropped, reasoning aliased).
    "messages-tojson": ("{{ messages | tojson }}", MISTRAL_TOKENS),
}

TEXT_CHAT = [
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
    {"role": "user", "content": "I'd like to show off how chat templating works!"},
]
SYSTEM_CHAT = [{"role": "system", "content": "You are a friendly chatbot who always responds in the style of a pirate"}] + TEXT_CHAT
UNICODE_CHAT = [
    {"role": "system", "content": "  Réponds en français, s'il te plaît.\n"},
    {"role": "user", "content": "Ünïcödé: 日本語, emoji 🦙, tab\tand \"quotes\" \\ backslash  "},
]
EMPTY_CHAT = [{"role": "user", "content": ""}]
NOT_ALTERNATING = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
TOOL_CHAT = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "content": "22 degrees", "name": "get_weather"},
]
FUNCTIONARY_CHAT = [
    {"role": "user", "content": "what's the weather like in Hanoi?"},
    {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_current_weather", "arguments": "{\n  \"location\": \"Hanoi\"\n}"}}]},
    {"role": "tool", "name": "get_current_weather", "content": "sunny"},
    {"role": "assistant", "content": "It is sunny."},
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather \u00e0 la carte",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                         "required": ["city"]}}}]


def parts(*items):
    return [{"type": "image"} if item is None else {"type": "text", "text": item} for item in items]


IMAGE_FIRST = [{"role": "user", "content": parts(None, "What is in this image?")},
               {"role": "assistant", "content": parts("A cat.")},
               {"role": "user", "content": parts("And these?", None, None)}]
TEXT_FIRST = [{"role": "user", "content": parts("Compare", None, "with", None, "please.")}]
MULTIMODAL_UNICODE = [{"role": "system", "content": parts("Réponds brièvement.")},
                      {"role": "user", "content": parts(None, "Qu'est-ce que c'est ? 🐱")}]
EMPTY_TEXT_PART = [{"role": "user", "content": parts(None, "")}]

TEXT_SETS = {"text": TEXT_CHAT, "system": SYSTEM_CHAT, "unicode": UNICODE_CHAT, "empty": EMPTY_CHAT,
             "not_alternating": NOT_ALTERNATING}
MULTIMODAL_SETS = {"image_first": IMAGE_FIRST, "text_first": TEXT_FIRST, "multimodal_unicode": MULTIMODAL_UNICODE,
                   "empty_text_part": EMPTY_TEXT_PART}
CONVERSATIONS = {
    "idefics2": MULTIMODAL_SETS, "idefics3": MULTIMODAL_SETS,
    "llama3.2-instruct": {**TEXT_SETS, "tools": TOOL_CHAT},
    "functionary-v2.2": {**TEXT_SETS, "tool_calls": FUNCTIONARY_CHAT},
    "messages-tojson": {"preprocessing": [
        {"role": "assistant", "content": "a", "reasoning": "r1"},
        {"role": "assistant", "content": "b", "reasoning_content": "r2", "thinking": "t2", "name": None},
        {"role": "user", "content": None, "name": "ann"}], **MULTIMODAL_SETS},
}
EXTRA = {"llama3.2-instruct": [{"date_string": "26 Jul 2024"}, {"date_string": "01 Jan 2042", "tools": TOOLS},
                               {"date_string": "01 Jan 2042", "tools": TOOLS, "tools_in_user_message": False}]}


def canon(value):
    """Sorted dict keys, except that role, content and type come first (messages and content parts)."""
    if isinstance(value, dict):
        head = [key for key in ("role", "content", "type") if key in value]
        return {key: canon(value[key]) for key in head + sorted(set(value) - set(head))}
    if isinstance(value, list):
        return [canon(item) for item in value]
    return value


def tokenizer_for(special_tokens, template):
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZER / "tokenizer.json"), **special_tokens)
    tokenizer.chat_template = template
    return tokenizer


def outcome(render):
    try:
        return {"output": render()}
    except jinja2.exceptions.TemplateError as error:
        return {"error": str(error), "error_type": type(error).__name__}
    except Exception as error:  # Python errors inside the template (TypeError, ...)
        return {"error": str(error), "error_type": type(error).__name__}


def renders():
    cases = []
    for name, (template, special_tokens) in TEMPLATES.items():
        tokenizer = tokenizer_for(special_tokens, template)
        assert tokenizer.special_tokens_map == special_tokens, (name, tokenizer.special_tokens_map)
        for conversation_name, messages in CONVERSATIONS.get(name, TEXT_SETS).items():
            for extra in EXTRA.get(name, [{}]):
                for add_generation_prompt in (False, True):
                    messages_c, extra_c = canon(messages), canon(extra)
                    result = outcome(lambda: tokenizer.apply_chat_template(
                        messages_c, tokenize=False, add_generation_prompt=add_generation_prompt, **extra_c))
                    cases.append({"template": name, "conversation": conversation_name, "messages": messages_c,
                                  "add_generation_prompt": add_generation_prompt, "extra": extra_c, **result})
    return cases


# Small templates for jinja2 semantics, rendered with transformers' environment and context
# (messages=[], tools=None, documents=None, add_generation_prompt=False, plus "context").
SEMANTICS = [
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("lstrip_blocks", "  {% if true %}\n    x\n  {% endif %}\n  {{ 'v' }}  \n", {}),
    ("lstrip_plus", "  {%+ if true %}x{% endif %}", {}),
    ("trim_plus", "{% if true +%}\nx{% endif %}", {}),
    ("minus_both", "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}  \n  c", {}),
    ("variable_minus", "a \n {{- 'b' -}} \n c", {}),
    ("variable_no_trim", "{{ 'a' }}\n{{ 'b' }}\n", {}),
    ("comment_strip", "a\n  {# note #}\nb {#- x -#} c", {}),
    ("comment_trailing_newline", "x{# c #}\ny\n\n", {}),
    ("raw_block", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}!", {}),
    ("crlf_newlines", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("loop_vars", "{% for x in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}", {"items": ["a", "b", "c"]}),
    ("loop_prev_next_cycle", "{% for x in items %}[{{ loop.previtem }}|{{ loop.nextitem }}|{{ loop.cycle('odd', 'even') }}]{% endfor %}", {"items": [1, 2, 3]}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for x in items if x % 2 == 0 %}{{ x }}:{{ loop.length }} {% endfor %}", {"items": [1, 2, 3, 4, 5, 6]}),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"a": 1, "b": [1, 2]}}),
    ("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("loop_scope", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }},{% endfor %}{{ x }}", {}),
    ("if_scope", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(count=0, seen=[]) %}{% for m in items %}{% set ns.count = ns.count + m %}{% endfor %}{{ ns.count }} {{ ns.seen }}", {"items": [1, 2, 3]}),
    ("namespace_dict_arg", "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}", {}),
    ("set_tuple_and_block", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}{% set block %}x{{ a }}y{% endset %}[{{ block }}]", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}", {}),
    ("elif_chain", "{% for v in [1, 5, 10] %}{% if v < 3 %}s{% elif v < 7 %}m{% else %}l{% endif %}{% endfor %}", {}),
    ("literals", "{{ 'a\\'b' }} {{ \"q\\\"\" }} {{ 'tab\\tnl\\n' }} {{ '\\x41\\u00e9\\U0001F600' }} {{ 'a' 'b' }} {{ 1_000 }} {{ 0x1F }} {{ 1.5e3 }} {{ True }} {{ none }} {{ [1, 'a', none, true, 2.5] }} {{ {'k': 'v', 'n': [1]} }} {{ (1, 2) | list }}", {}),
    ("arithmetic", "{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1 + 2.5 }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 4 / 2 }} {{ true + 1 }} {{ 10 - 3 * 2 }} {{ -2 ** 2 }} {{ 7.5 % 2 }}", {}),
    ("concat_and_compare", "{{ 1 ~ 'a' ~ none ~ undefined_var }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' in 'cat' }} {{ 2 not in [1, 3] }} {{ 'k' in {'k': 1} }} {{ 1 == 1.0 }} {{ 'a' != 'a' }} {{ [1, 2] < [1, 3] }}", {}),
    ("boolean_ops", "{{ none or 'fallback' }} {{ 0 and 'x' }} {{ 'x' and 'y' }} {{ not [] }} {{ '' if true else 'no' }}|{{ 'yes' if false }}|", {}),
    ("undefined", "[{{ missing }}] {{ missing is defined }} {{ missing is undefined }} {{ missing | default('d') }} {{ missing | length }} {{ d.nokey }} {{ d.nokey is defined }} {{ d['k'] }} {{ missing == missing }} {% if missing %}t{% else %}f{% endif %}{% for x in missing %}x{% endfor %}", {"d": {"k": "v"}}),
    ("tests", "{{ 1 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ 's' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 's' is sequence }} {{ none is none }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'a' is in 'abc' }} {{ 'abc' is lower }} {{ false is sameas false }} {{ true is boolean }} {{ x is not none }}", {"x": 1}),
    ("string_filters", "{{ '  a b  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'hello world-foo (bar' | title }}|{{ 'hELLO' | capitalize }}|{{ 'AbC' | lower }}{{ 'AbC' | upper }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'abc' | reverse }}|{{ '<a href=\"x\">&\\'' | e }}|{{ 'x' | safe }}|{{ 12 | string }}|{{ 'abc' | length }}|{{ 'ab' | list }}", {}),
    ("list_filters", "{{ items | join(', ') }}|{{ items | first }}|{{ items | last }}|{{ items | length }}|{{ items | reverse | list }}|{{ [3, 1, 2] | sort }}|{{ ['b', 'A', 'c'] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ [1, 2, 1, 3] | unique | list }}|{{ [1, 2, 3] | sum }}|{{ people | map(attribute='name') | join('/') }}|{{ people | selectattr('age', 'gt', 30) | map(attribute='name') | list }}|{{ people | rejectattr('admin') | list | length }}|{{ [1, 0, 2] | select | list }}|{{ ['a', 'B'] | map('upper') | list }}|{{ people | sort(attribute='age') | map(attribute='name') | join }}", {"items": ["x", "y", "z"], "people": [{"name": "Ann", "age": 41, "admin": True}, {"name": "Bob", "age": 25, "admin": False}, {"name": "Cy", "age": 33}]}),
    ("number_filters", "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 'x' | float }} {{ -3 | abs }} {{ 2.567 | round(1) }} {{ 2.5 | round }} {{ 7 | float }}", {}),
    ("dict_access", "{{ d.items() | length }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.get('a') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }} {{ d | items | map('last') | list }} {{ d['a'] }} {{ d.a }} {{ d | length }} {{ d | tojson }}", {"d": {"a": 1, "b": "two"}}),
    ("slicing", "{{ s[1:] }} {{ s[::-1] }} {{ s[-2:] }} {{ s[:2] }} {{ s[1:4:2] }} {{ items[1:] }} {{ items[::-1] }} {{ items[-1] }} {{ items[5] }} {{ s[0] }} {{ items.0 }}", {"s": "héllo", "items": [1, 2, 3]}),
    ("string_methods", "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}|{{ s.strip().startswith('He') }}|{{ 'x.py'.endswith(('.py', '.js')) }}|{{ 'they\\'re bill\\'s'.title() }}|{{ 'ÉCOLE'.lower() }}|{{ 'straße'.upper() }}|{{ 'a-b'.replace('-', '+') }}|{{ 'hello'.find('l') }}|{{ 'hello'.count('l') }}|{{ '-'.join(['a', 'b']) }}|{{ '{} and {name}'.format(1, name='x') }}|{{ 'l1\\nl2\\r\\nl3'.splitlines() }}|{{ '123'.isdigit() }}", {"s": "  Hello World \n"}),
    ("tojson", "{{ d | tojson }}\n{{ d | tojson(indent=2) }}\n{{ d | tojson(sort_keys=true) }}\n{{ d | tojson(ensure_ascii=true) }}\n{{ d | tojson(separators=(',', ':')) }}\n{{ [] | tojson(indent=2) }}{{ {} | tojson }}{{ 'a\"\\\\\\n\\u0001' | tojson }}{{ 1.5 | tojson }}{{ none | tojson }}", {"d": {"z": [1, 2.5, True, None], "a": "é\u2028🦙", "m": {"k": []}}}),
    ("python_str", "{{ [1.0, 'it\\'s', \"a\\\"b\", {'k': none}, true, 1e20, 0.1] }} {{ {'a': [1]} }}", {}),
    ("dict_and_range", "{{ dict(a=1, b='x') }} {{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }} {{ dict(a=1) | tojson }}", {}),
    ("attribute_vs_item", "{{ d.items is defined }} {{ d['items'] }} {{ d['values'] }} {{ d.values is callable }}", {"d": {"items": "key", "values": 3}}),
    ("raise_exception", "{{ raise_exception('Custom failure: ' ~ 3) }}", {}),
    ("undefined_attribute_error", "{{ missing.attr }}", {}),
    ("undefined_chain_error", "{{ d.nokey.deeper }}", {"d": {}}),
    ("type_error", "{{ 'a' + 1 }}", {}),
    ("unsafe_append", "{% set l = [] %}{{ l.append(1) }}", {}),
    ("unknown_filter", "{{ 'a' | nosuchfilter }}", {}),
    ("call_non_callable", "{{ 'abc'() }}", {}),
    ("range_too_big", "{{ range(200000) | length }}", {}),
    ("namespace_non_namespace", "{% set d = {} %}{% set d.x = 1 %}", {}),
    ("generation_block", "{% for m in items %}{% generation %}<{{ m }}>{% endgeneration %}{% endfor %}", {"items": [1, 2]}),
    ("message_fields", "{% for m in messages %}{{ m.role }}:{{ m['content'] }}:{{ m.name | default('-') }}:{{ m.thinking }};{% endfor %}", {"messages": [{"role": "user", "content": "hi", "name": "ann"}, {"role": "assistant", "content": "yo", "reasoning_content": "hmm"}]}),
    ("special_tokens_and_flags", "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|{{ tools is none }}", {"bos_token": "<s>", "eos_token": "</s>"}),
]

SYNTAX_ERRORS = [
    ("unclosed_for", "line one\n{% for x in items %}\n{{ x }}\n"),
    ("unknown_tag", "a\nb\n{% frobnicate %}"),
    ("bad_expression", "{{ 1 + }}"),
    ("unclosed_variable", "x\n\n{{ 'a' "),
    ("unclosed_comment", "ok\n{# never closed"),
    ("stray_endif", "{% if true %}x{% endif %}\n{% endif %}"),
    ("unbalanced_paren", "{{ (1 + 2 }}"),
    ("unexpected_char", "\n\n{{ a ? b }}"),
]


def render_semantics(template, context):
    compiled = _compile_jinja_template(template)
    full = {"messages": [], "tools": None, "documents": None, "add_generation_prompt": False, **context}
    return compiled.render(**full)


def semantics():
    cases = []
    for name, template, context in SEMANTICS:
        context = canon(context)
        cases.append({"name": name, "template": template, "context": context,
                      **outcome(lambda: render_semantics(template, context))})
    return cases


def syntax_errors():
    cases = []
    for name, template in SYNTAX_ERRORS:
        try:
            _compile_jinja_template(template)
        except jinja2.exceptions.TemplateSyntaxError as error:
            cases.append({"name": name, "template": template, "line": error.lineno, "message": error.message})
            continue
        raise AssertionError(f"{name} parsed")
    return cases


def strftime_cases():
    moment = datetime(2024, 7, 26, 9, 5, 3, tzinfo=timezone.utc)
    formats = ["%d %b %Y", "%Y-%m-%d %H:%M:%S", "%A, %B %e %y", "%I %p %j %a %%", "%h"]
    return {"timestamp": moment.timestamp(), "formats": {f: moment.strftime(f) for f in formats}}


def main():
    templates = {name: {"source": source, "special_tokens": tokens} for name, (source, tokens) in TEMPLATES.items()}
    fixture = {"templates": templates, "renders": renders(), "semantics": semantics(), "syntax_errors": syntax_errors(),
               "strftime": strftime_cases()}
    OUT.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")
    renders_ok = sum("output" in case for case in fixture["renders"])
    print(f"{OUT.relative_to(ROOT)}: {len(fixture['renders'])} renders ({renders_ok} outputs), "
          f"{len(fixture['semantics'])} semantics, {len(fixture['syntax_errors'])} syntax errors")


if __name__ == "__main__":
    main()
