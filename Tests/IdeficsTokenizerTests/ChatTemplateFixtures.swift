import Foundation
@testable import IdeficsTokenizer
import TestSupport
import XCTest

/// Tests/Fixtures/chat_templates/cases.json, written by scripts/make_chat_template_fixtures.py from transformers.
enum ChatTemplateFixtures {
    /// JSON with its numbers' int/float distinction, which JSONSerialization loses on Linux.
    indirect enum JSON: Decodable {
        case null, bool(Bool), int(Int), double(Double), string(String), array([JSON]), object([String: JSON])

        init(from decoder: Swift.Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { self = .null } else if let value = try? container.decode(Bool.self) {
                self = .bool(value)
            } else if let value = try? container.decode(Int.self) { self = .int(value) } else if let value = try? container.decode(Double.self) {
                self = .double(value)
            } else if let value = try? container.decode(String.self) { self = .string(value) } else if let value = try? container.decode([JSON].self) {
                self = .array(value)
            } else { self = .object(try container.decode([String: JSON].self)) }
        }

        subscript(key: String) -> JSON? {
            if case let .object(object) = self { return object[key] }
            return nil
        }

        var string: String? {
            if case let .string(value) = self { return value }
            return nil
        }

        var array: [JSON] { if case let .array(items) = self { return items } else { return [] } }
        var objectValue: [String: JSON] { if case let .object(object) = self { return object } else { return [:] } }

        /// The script puts role, content and type first and sorts the other keys; this rebuilds that order.
        var templateValue: TemplateValue {
            switch self {
            case .null: return .null
            case let .bool(value): return .bool(value)
            case let .int(value): return .int(value)
            case let .double(value): return .double(value)
            case let .string(value): return .string(value)
            case let .array(items): return .array(items.map(\.templateValue))
            case let .object(object):
                let head = ["role", "content", "type"].filter { object[$0] != nil }
                let keys = head + object.keys.filter { !head.contains($0) }.sorted()
                return .object(OrderedMap(keys.map { ($0, object[$0]!.templateValue) }))
            }
        }
    }

    static let root: JSON = {
        do { return try JSONDecoder().decode(JSON.self, from: Fixtures.data("chat_templates/cases.json")) } catch {
            fatalError("cases.json: \(error)")
        }
    }()

    /// A message as the script built it: role, content (string or parts), then the other keys sorted.
    static func message(_ json: JSON) -> ChatMessage {
        var extra = OrderedMap<TemplateValue>()
        for key in json.objectValue.keys.sorted() where key != "role" && key != "content" {
            extra[key] = json[key]!.templateValue
        }
        let content: ChatMessage.Content?
        switch json["content"] {
        case let .string(text)?: content = .text(text)
        case let .array(parts)?:
            content = .parts(parts.map { part in
                switch part["type"]?.string {
                case "text": return .text(part["text"]?.string ?? "")
                case "image": return .image
                default:
                    guard case let .object(object) = part.templateValue else { return .image }
                    return .other(object)
                }
            })
        default: content = nil
        }
        return ChatMessage(role: json["role"]?.string ?? "", content: content, extra: extra)
    }

    static func context(_ json: JSON?) -> [String: TemplateValue] {
        (json?.objectValue ?? [:]).mapValues(\.templateValue)
    }

    /// Checks a render against the recorded outcome: the same output, or the same error message.
    static func check(_ render: () throws -> String, against expected: JSON, _ label: String,
                      file: StaticString = #filePath, line: UInt = #line) {
        do {
            let output = try render()
            XCTAssertEqual(output, expected["output"]?.string, label, file: file, line: line)
        } catch let error as TemplateError {
            guard let message = expected["error"]?.string else {
                return XCTFail("\(label): unexpected error \(error)", file: file, line: line)
            }
            switch error {
            case let .raised(raised):
                XCTAssertEqual(expected["error_type"]?.string, "TemplateError", label, file: file, line: line)
                XCTAssertEqual(raised, message, label, file: file, line: line)
            case let .runtime(runtime, _):
                XCTAssertEqual(runtime, message, label, file: file, line: line)
            default:
                XCTFail("\(label): unexpected error \(error)", file: file, line: line)
            }
        } catch {
            XCTFail("\(label): unexpected error \(error)", file: file, line: line)
        }
    }
}
