/// Attribute, item and slice access as jinja2's sandbox performs them: `a.b` tries the attribute (a method) first,
/// then the item; `a[b]` tries the item first, then the attribute. A miss is an undefined value.
enum Access {
    private static func missing(_ object: Value, _ name: String) -> Value {
        .undefined(Undefined(message: "'\(object.objectDescription)' has no attribute '\(name)'"))
    }

    static func attribute(of object: Value, _ name: String) throws -> Value {
        let object = try object.requireDefined()
        if let method = Methods.lookup(name, on: object) { return method }
        switch object {
        case let .dict(map): return map[name] ?? missing(object, name)
        case let .namespace(namespace): return namespace.attributes[name] ?? missing(object, name)
        default: return missing(object, name)
        }
    }

    static func item(of object: Value, _ key: Value) throws -> Value {
        let object = try object.requireDefined()
        switch (object, key) {
        case let (.dict(map), .string(name)):
            return try map[name] ?? attribute(of: object, name)
        case let (.namespace(namespace), .string(name)):
            return namespace.attributes[name] ?? missing(object, name)
        case let (.list(items), _) where key.integer != nil:
            return element(items, key.integer!) ?? noElement(object, key)
        case let (.string(text), _) where key.integer != nil:
            return element(text.unicodeScalars.map { Value.string(String($0)) }, key.integer!) ?? noElement(object, key)
        case let (_, .string(name)):
            return try attribute(of: object, name)
        default:
            return noElement(object, key)
        }
    }

    private static func element(_ items: [Value], _ index: Int) -> Value? {
        let position = index < 0 ? index + items.count : index
        return items.indices.contains(position) ? items[position] : nil
    }

    private static func noElement(_ object: Value, _ key: Value) -> Value {
        .undefined(Undefined(message: "\(object.objectDescription) has no element \(key.repr)"))
    }

    static func slice(_ object: Value, start: Value?, stop: Value?, step: Value?) throws -> Value {
        func bound(_ value: Value?) throws -> Int? {
            guard let value else { return nil }
            if case .none = value { return nil }
            guard let integer = value.integer else {
                throw EvaluationError(message: "slice indices must be integers or None")
            }
            return integer
        }
        let start = try bound(start), stop = try bound(stop), step = try bound(step)
        switch try object.requireDefined() {
        case let .list(items):
            return .list(try PythonString.sliceIndices(count: items.count, start: start, stop: stop, step: step).map { items[$0] })
        case let .string(text):
            let scalars = Array(text.unicodeScalars)
            let indices = try PythonString.sliceIndices(count: scalars.count, start: start, stop: stop, step: step)
            return .string(String(String.UnicodeScalarView(indices.map { scalars[$0] })))
        default:
            throw EvaluationError(message: "'\(object.typeName)' object is not subscriptable")
        }
    }
}
