import Foundation
@testable import IdeficsTokenizer
import TestSupport
import XCTest

/// Loading from checkpoint folders, the public message API, errors and resource bounds.
final class ChatTemplateAPITests: XCTestCase {
    private func temporaryDirectory(_ files: [String: String]) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-template-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        return directory
    }

    func testIdefics2CheckpointFolder() throws {
        let template = try XCTUnwrap(ChatTemplate.load(directory: Fixtures.url("tokenizer")))
        XCTAssertEqual(template.specialTokens, ["bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"])
        let messages = [
            ChatMessage(role: "user", parts: [.image, .text("What is in this image?")]),
            ChatMessage(role: "assistant", parts: [.text("A cat.")]),
            ChatMessage(role: "user", parts: [.text("And these?"), .image, .image]),
        ]
        XCTAssertEqual(try template.render(messages: messages, addGenerationPrompt: true),
                       "User:<image>What is in this image?<end_of_utterance>\nAssistant: A cat.<end_of_utterance>\n"
                           + "User: And these?<image><image><end_of_utterance>\nAssistant:")
    }

    func testLoadPrecedenceAndTemplateLists() throws {
        let listConfig = #"{"bos_token": {"content": "<B>"}, "eos_token": "<E>", "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}D{{ eos_token }}"}]}"#
        let fromList = try XCTUnwrap(ChatTemplate.load(directory: temporaryDirectory([
            "tokenizer_config.json": listConfig, "special_tokens_map.json": #"{"eos_token": "<mapped>"}"#,
        ])))
        XCTAssertEqual(try fromList.render(messages: [], addGenerationPrompt: false), "<B>D<mapped>")

        let decoderConfig = #"{"added_tokens_decoder": {}, "eos_token": "<E>", "chat_template": "{{ eos_token }}"}"#
        let ignoresMap = try XCTUnwrap(ChatTemplate.load(directory: temporaryDirectory([
            "tokenizer_config.json": decoderConfig, "special_tokens_map.json": #"{"eos_token": "<mapped>"}"#,
        ])))
        XCTAssertEqual(try ignoresMap.render(messages: [], addGenerationPrompt: false), "<E>")

        let jinjaWins = try XCTUnwrap(ChatTemplate.load(directory: temporaryDirectory([
            "chat_template.jinja": "jinja\n", "chat_template.json": #"{"chat_template": "json"}"#,
            "tokenizer_config.json": #"{"chat_template": "config"}"#,
        ])))
        XCTAssertEqual(try jinjaWins.render(messages: [], addGenerationPrompt: false), "jinja")
        let jsonNext = try XCTUnwrap(ChatTemplate.load(directory: temporaryDirectory([
            "chat_template.json": #"{"chat_template": "json"}"#, "tokenizer_config.json": #"{"chat_template": "config"}"#,
        ])))
        XCTAssertEqual(try jsonNext.render(messages: [], addGenerationPrompt: false), "json")

        XCTAssertNil(try ChatTemplate.load(directory: temporaryDirectory(["tokenizer_config.json": "{}"])))
        XCTAssertThrowsError(try ChatTemplate.load(directory: temporaryDirectory(["chat_template.json": "[1]"]))) {
            XCTAssertEqual($0 as? TemplateError, .load(file: "chat_template.json", reason: "top level is not a JSON object"))
        }
    }

    func testExtraContextOverridesAndRaise() throws {
        let template = try ChatTemplate(source: "{{ bos_token }}{% if messages[0].role == 'system' %}{{ raise_exception('no system: ' + messages[0]['content']) }}{% endif %}{{ messages[0].name }}",
                                        specialTokens: ["bos_token": "<s>"])
        let named = ChatMessage(role: "user", content: .text("hi"), extra: ["name": "ann"])
        XCTAssertEqual(try template.render(messages: [named], addGenerationPrompt: false, extraContext: ["bos_token": "[B]"]), "[B]ann")
        XCTAssertThrowsError(try template.render(messages: [ChatMessage(role: "system", text: "x")], addGenerationPrompt: false)) {
            XCTAssertEqual($0 as? TemplateError, .raised(message: "no system: x"))
            XCTAssertEqual("\($0)", "no system: x")
        }
    }

    func testErrorsNameTheProblemAndLine() {
        XCTAssertThrowsError(try ChatTemplate(source: "a\n{% include 'other.jinja' %}")) {
            XCTAssertEqual($0 as? TemplateError, .syntax(message: "Encountered unknown tag 'include'.", line: 2, column: 4))
        }
        XCTAssertThrowsError(try ChatTemplate(source: "ok\n\n  {{ x | upper }\n")) {
            guard case let .syntax(_, line, _) = $0 as? TemplateError else { return XCTFail("\($0)") }
            XCTAssertEqual(line, 3)
        }
        XCTAssertThrowsError(try ChatTemplate(source: "{% for x in y recursive %}{% endfor %}")) {
            XCTAssertTrue("\($0)".contains("recursive loops are not supported"), "\($0)")
        }
        XCTAssertThrowsError(try ChatTemplate(source: "{% break %}")) {
            XCTAssertTrue("\($0)".contains("'break' outside of a loop"), "\($0)")
        }
        XCTAssertThrowsError(try ChatTemplate(source: "line 1\n{{ 'x' | frobnicate }}").render(messages: [], addGenerationPrompt: false)) {
            XCTAssertEqual($0 as? TemplateError, .runtime(message: "No filter named 'frobnicate'.", line: 2))
        }
        XCTAssertThrowsError(try ChatTemplate(source: "\n\n{{ messages(1) }}").render(messages: [], addGenerationPrompt: false)) {
            XCTAssertEqual($0 as? TemplateError, .runtime(message: "'list' object is not callable", line: 3))
        }
    }

    func testHostileTemplatesFailInsteadOfHangingOrCrashing() throws {
        let loops = try ChatTemplate(source: "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}")
        XCTAssertThrowsError(try loops.render(messages: [], addGenerationPrompt: false)) {
            XCTAssertTrue("\($0)".contains("loop iterations"), "\($0)")
        }
        let recursion = try ChatTemplate(source: "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
        XCTAssertThrowsError(try recursion.render(messages: [], addGenerationPrompt: false)) {
            XCTAssertTrue("\($0)".contains("macro calls nested deeper"), "\($0)")
        }
        let deep = "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"
        XCTAssertThrowsError(try ChatTemplate(source: deep)) { XCTAssertTrue("\($0)".contains("nesting"), "\($0)") }
        let notDeep = try ChatTemplate(source: "{{ " + String(repeating: "(", count: 50) + "1" + String(repeating: ")", count: 50) + " }}")
        XCTAssertEqual(try notDeep.render(messages: [], addGenerationPrompt: false), "1")
        let huge = try ChatTemplate(source: "{{ 'x' * 1000000000000 }}")
        XCTAssertThrowsError(try huge.render(messages: [], addGenerationPrompt: false))
    }

    func testRecursiveMacroWithinBoundsAndParseOnceRenderMany() throws {
        let countdown = try ChatTemplate(source: "{% macro down(n) %}{{ n }}{% if n > 0 %},{{ down(n - 1) }}{% endif %}{% endmacro %}{{ down(5) }}")
        for _ in 0..<3 { XCTAssertEqual(try countdown.render(messages: [], addGenerationPrompt: false), "5,4,3,2,1,0") }
    }
}
