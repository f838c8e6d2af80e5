import Foundation
import IdeficsFiles

/// A Hugging Face chat template, parsed once and rendered like transformers' `apply_chat_template(tokenize=False)`
/// (jinja2 sandbox with `trim_blocks`, `lstrip_blocks`, loop controls and transformers' globals and `tojson`).
public struct ChatTemplate: Sendable {
    /// The names transformers passes as variables from the tokenizer's special tokens map.
    public static let specialTokenNames = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                                           "mask_token"]

    public let source: String
    /// Where the template came from: a file name of the checkpoint folder, or a description of a built-in default.
    public let origin: String
    /// Variables such as `bos_token` and `eos_token`, passed to every render.
    public var specialTokens: [String: String]
    private let program: Program

    /// The parsed template; immutable after parsing, so it can be shared across threads.
    private final class Program: @unchecked Sendable {
        let nodes: [Node]
        init(_ nodes: [Node]) { self.nodes = nodes }
    }

    public init(source: String, specialTokens: [String: String] = [:], origin: String = "source") throws {
        self.source = source
        self.origin = origin
        self.specialTokens = specialTokens
        program = Program(try Parser.parse(source))
    }

    /// Renders a conversation. Variables: `messages`, `tools` and `documents` (none), `add_generation_prompt`,
    /// the special tokens, then `extraContext`, which overrides any of them.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool,
                       extraContext: [String: TemplateValue] = [:]) throws -> String {
        var context: [String: Value] = [
            "messages": .list(messages.map { Value($0.templateValue) }),
            "tools": .none,
            "documents": .none,
            "add_generation_prompt": .bool(addGenerationPrompt),
        ]
        for (name, token) in specialTokens { context[name] = .string(token) }
        for (name, value) in extraContext { context[name] = Value(value) }
        return try Interpreter(context: context).render(program.nodes)
    }

    /// The template of a checkpoint folder, looked up in transformers' order: `chat_template.jinja`,
    /// `chat_template.json`, the `chat_template` of `processor_config.json`, then that of `tokenizer_config.json` (a
    /// string, or a list of `{name, template}` whose "default" is used). Special tokens come from
    /// `tokenizer_config.json`, overridden by `special_tokens_map.json` when the config has no
    /// `added_tokens_decoder` (transformers' legacy rule). nil when the folder has no template.
    public static func load(directory: URL) throws -> ChatTemplate? {
        let config = try readJSONObject(directory.appendingPathComponent("tokenizer_config.json"))
        let specialTokens = try loadSpecialTokens(directory: directory, config: config)
        let jinjaFile = directory.appendingPathComponent("chat_template.jinja")
        if FileManager.default.fileExists(atPath: jinjaFile.path) {
            do {
                return try ChatTemplate(source: InputFile.text(at: jinjaFile.path), specialTokens: specialTokens,
                                        origin: jinjaFile.lastPathComponent)
            } catch let error as InputFileError {
                throw TemplateError.load(file: jinjaFile.lastPathComponent, reason: error.reason)
            }
        }
        let jsonFile = "chat_template.json", processorFile = "processor_config.json"
        if let object = try readJSONObject(directory.appendingPathComponent(jsonFile)) {
            guard let source = object["chat_template"] as? String else {
                throw TemplateError.load(file: jsonFile, reason: "\"chat_template\" is not a string")
            }
            return try ChatTemplate(source: source, specialTokens: specialTokens, origin: jsonFile)
        }
        if let template = try readJSONObject(directory.appendingPathComponent(processorFile))?["chat_template"],
           !(template is NSNull) {
            guard let source = template as? String else {
                throw TemplateError.load(file: processorFile, reason: "\"chat_template\" is not a string")
            }
            return try ChatTemplate(source: source, specialTokens: specialTokens, origin: processorFile)
        }
        guard let config, let template = config["chat_template"], !(template is NSNull) else { return nil }
        let origin = "tokenizer_config.json"
        if let source = template as? String { return try ChatTemplate(source: source, specialTokens: specialTokens, origin: origin) }
        let named = (template as? [[String: Any]])?.first { $0["name"] as? String == "default" }
        guard let source = named?["template"] as? String else {
            throw TemplateError.load(file: origin,
                                     reason: "\"chat_template\" is neither a string nor a list with a \"default\" template")
        }
        return try ChatTemplate(source: source, specialTokens: specialTokens, origin: origin)
    }

    /// The special-token variables of a folder (for a template that comes from elsewhere, such as a default).
    public static func specialTokens(directory: URL) throws -> [String: String] {
        try loadSpecialTokens(directory: directory,
                              config: readJSONObject(directory.appendingPathComponent("tokenizer_config.json")))
    }

    private static func loadSpecialTokens(directory: URL, config: [String: Any]?) throws -> [String: String] {
        var tokens: [String: String] = [:]
        func merge(_ object: [String: Any]?) {
            for name in specialTokenNames {
                if let token = object?[name] as? String {
                    tokens[name] = token
                } else if let token = (object?[name] as? [String: Any])?["content"] as? String {
                    tokens[name] = token
                }
            }
        }
        merge(config)
        if config?["added_tokens_decoder"] == nil {
            merge(try readJSONObject(directory.appendingPathComponent("special_tokens_map.json")))
        }
        return tokens
    }

    /// The top-level object of a JSON file, or nil if the file does not exist.
    private static func readJSONObject(_ url: URL) throws -> [String: Any]? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let object: Any
        do {
            object = try InputFile.json(InputFile.data(at: url.path))
        } catch let error as InputFileError {
            throw TemplateError.load(file: url.lastPathComponent, reason: error.reason)
        } catch let error as JSONError {
            throw TemplateError.load(file: url.lastPathComponent, reason: "not valid JSON: \(error.reason)")
        }
        guard let dictionary = object as? [String: Any] else {
            throw TemplateError.load(file: url.lastPathComponent, reason: "top level is not a JSON object")
        }
        return dictionary
    }
}
