import Foundation
@testable import IdeficsTokenizer
import TestSupport
import XCTest

/// Real chat templates and jinja2 semantics against renders recorded from transformers 5.23 / jinja2 3.1.6.
final class ChatTemplateTests: XCTestCase {
    private typealias JSON = ChatTemplateFixtures.JSON

    func testRealTemplatesMatchTransformers() throws {
        let cases = ChatTemplateFixtures.root["renders"]!.array
        XCTAssertGreaterThan(cases.count, 100)
        var templates: [String: ChatTemplate] = [:]
        var names = Set<String>()
        for testCase in cases {
            let name = testCase["template"]!.string!
            names.insert(name)
            let template = try templates[name] ?? ChatTemplate(source: Self.templateSource(name))
            templates[name] = template
            let messages = testCase["messages"]!.array.map(ChatTemplateFixtures.message)
            let addPrompt = testCase["add_generation_prompt"].map { if case .bool(true) = $0 { true } else { false } } ?? false
            let label = "\(name) / \(testCase["conversation"]!.string!) / prompt=\(addPrompt)"
            ChatTemplateFixtures.check({
                try template.render(messages: messages, addGenerationPrompt: addPrompt,
                                    extraContext: ChatTemplateFixtures.context(testCase["extra"]).merging(
                                        Self.specialTokens(name)) { given, _ in given })
            }, against: testCase, label)
        }
        XCTAssertTrue(names.isSuperset(of: ["idefics2", "llama2-chat", "llama3-instruct", "mistral-instruct-v0.1", "zephyr",
                                            "qwen2-chatml", "gemma-it", "phi3"]))
    }

    func testSemanticsMatchJinja2() throws {
        let cases = ChatTemplateFixtures.root["semantics"]!.array
        XCTAssertGreaterThan(cases.count, 40)
        for testCase in cases {
            let name = testCase["name"]!.string!
            let template = try ChatTemplate(source: testCase["template"]!.string!)
            ChatTemplateFixtures.check({
                try template.render(messages: [], addGenerationPrompt: false,
                                    extraContext: ChatTemplateFixtures.context(testCase["context"]))
            }, against: testCase, name)
        }
    }

    func testSyntaxErrorsReportJinja2Line() {
        let cases = ChatTemplateFixtures.root["syntax_errors"]!.array
        XCTAssertFalse(cases.isEmpty)
        for testCase in cases {
            let name = testCase["name"]!.string!
            guard case let .int(expectedLine)? = testCase["line"] else { return XCTFail(name) }
            XCTAssertThrowsError(try ChatTemplate(source: testCase["template"]!.string!), name) { error in
                guard case let .syntax(message, line, _) = error as? TemplateError else {
                    return XCTFail("\(name): \(error)")
                }
                XCTAssertEqual(line, expectedLine, "\(name): \(message)")
                XCTAssertTrue("\(error)".contains("line \(expectedLine)"), "\(error)")
            }
        }
    }

    func testStrftimeMatchesPython() throws {
        let strftime = ChatTemplateFixtures.root["strftime"]!
        let timestamp: Double
        switch strftime["timestamp"] {
        case let .int(value)?: timestamp = Double(value)
        case let .double(value)?: timestamp = value
        default: return XCTFail("timestamp")
        }
        let formats = strftime["formats"]!.objectValue
        XCTAssertFalse(formats.isEmpty)
        for (format, expected) in formats {
            XCTAssertEqual(Globals.strftime(format, date: Date(timeIntervalSince1970: timestamp), timeZone: TimeZone(identifier: "UTC")!),
                           expected.string, format)
        }
    }

    // MARK: Helpers

    private static func templateCase(_ name: String) -> JSON {
        ChatTemplateFixtures.root["templates"]![name]!
    }

    private static func templateSource(_ name: String) -> String { templateCase(name)["source"]!.string! }

    private static func specialTokens(_ name: String) -> [String: TemplateValue] {
        ChatTemplateFixtures.context(templateCase(name)["special_tokens"])
    }
}
