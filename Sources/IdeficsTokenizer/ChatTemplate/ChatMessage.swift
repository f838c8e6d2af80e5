/// One message of a conversation, shaped as transformers passes it to the template:
/// `{"role": ..., "content": ..., <extra keys>}`.
public struct ChatMessage: Sendable, Equatable {
    /// Multimodal content parts, as in `{"type": "text", "text": ...}` / `{"type": "image"}`.
    public enum Part: Sendable, Equatable {
        case text(String)
        case image
        /// Any other part, e.g. `{"type": "video"}`; rendered as given.
        case other(OrderedMap<TemplateValue>)

        var templateValue: TemplateValue {
            switch self {
            case let .text(text): return ["type": "text", "text": .string(text)]
            case .image: return ["type": "image"]
            case let .other(object): return .object(object)
            }
        }
    }

    public enum Content: Sendable, Equatable {
        case text(String)
        case parts([Part])
    }

    public var role: String
    /// nil leaves the key out, as transformers drops `content=None`.
    public var content: Content?
    /// Further keys templates read, e.g. `name`, `tool_calls`, `reasoning_content`. A `.null` value leaves the key
    /// out, as transformers does.
    public var extra: OrderedMap<TemplateValue>

    public init(role: String, content: Content?, extra: OrderedMap<TemplateValue> = [:]) {
        self.role = role
        self.content = content
        self.extra = extra
    }

    public init(role: String, text: String) { self.init(role: role, content: .text(text)) }
    public init(role: String, parts: [Part]) { self.init(role: role, content: .parts(parts)) }

    /// The dict the template sees, after transformers' preprocessing: `None` values dropped, and reasoning given
    /// under older names also exposed as `thinking` (first key) and `reasoning_content` (last key).
    var templateValue: TemplateValue {
        var object: OrderedMap<TemplateValue> = ["role": .string(role)]
        switch content {
        case let .text(text)?: object["content"] = .string(text)
        case let .parts(parts)?: object["content"] = .array(parts.map(\.templateValue))
        case nil: break
        }
        for (key, value) in extra.entries where value != .null { object[key] = value }
        if let reasoning = ["reasoning_content", "thinking", "reasoning"].lazy.compactMap({ object[$0] }).first {
            var aliased: OrderedMap<TemplateValue> = ["thinking": reasoning]
            for (key, value) in object.entries { aliased[key] = value }
            aliased["reasoning_content"] = reasoning
            return .object(aliased)
        }
        return .object(object)
    }
}
