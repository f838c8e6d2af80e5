/// The single-sequence template of a `TemplateProcessing` post-processor: which special-token ids surround the
/// encoded text when `addSpecialTokens` is true. (Pair templates are not used for single-text encoding.)
struct Template: Sendable {
    enum Item: Sendable {
        case special([Int])
        case sequence
    }

    let items: [Item]

    init(items: [Item]) { self.items = items }

    init(json node: JSONNode) throws {
        guard try node.typeTag() == "TemplateProcessing" else {
            throw node.unsupported("post_processor type \"\(try node.typeTag())\"")
        }
        let specialTokens = try node.required("special_tokens")
        items = try node.required("single").array().map { item in
            if let special = try item.optional("SpecialToken") {
                let name = try special.required("id").string()
                guard let entry = try specialTokens.optional(name) else {
                    throw special.invalid("\"\(name)\" is not listed in the template's special_tokens")
                }
                return .special(try entry.required("ids").array().map { try $0.int() })
            }
            if try item.optional("Sequence") != nil { return .sequence }
            throw item.invalid("expected SpecialToken or Sequence")
        }
    }

    func apply(to ids: [Int]) -> [Int] { apply(to: ids) { $0 } }

    /// The template over any per-token values (ids with their offsets, say): `special` gives an added id's value.
    func apply<Value>(to values: [Value], special: (Int) -> Value) -> [Value] {
        items.flatMap { item -> [Value] in
            switch item {
            case let .special(ids): return ids.map(special)
            case .sequence: return values
            }
        }
    }
}
