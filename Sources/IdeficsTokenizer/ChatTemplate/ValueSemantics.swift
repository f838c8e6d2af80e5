/// Python's behavior of values as jinja2 exposes it: truthiness, str/repr, equality, ordering, iteration.
extension Value {
    /// The type name Python error messages use.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .callable: return "function"
        }
    }

    /// jinja2's `object_type_repr`, used in undefined messages: "dict object", "None".
    var objectDescription: String {
        if case .none = self { return "None" }
        return "\(typeName) object"
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case let .bool(value): return value
        case let .int(value): return value != 0
        case let .double(value): return value != 0
        case let .string(value): return !value.isEmpty
        case let .list(value): return !value.isEmpty
        case let .dict(value): return !value.isEmpty
        case .namespace, .callable: return true
        }
    }

    /// Python `str()`; an undefined prints as "".
    var str: String {
        switch self {
        case .undefined: return ""
        case let .string(value): return value
        default: return repr
        }
    }

    /// Python `repr()`.
    var repr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case let .bool(value): return value ? "True" : "False"
        case let .int(value): return String(value)
        case let .double(value): return value.description
        case let .string(value): return PythonString.repr(value)
        case let .list(items): return "[" + items.map(\.repr).joined(separator: ", ") + "]"
        case let .dict(map):
            return "{" + map.entries.map { PythonString.repr($0.key) + ": " + $0.value.repr }.joined(separator: ", ") + "}"
        case let .namespace(namespace):
            return "<Namespace " + namespace.attributes.entries.map { "\($0.key)=\($0.value.repr)" }.joined(separator: ", ") + ">"
        case let .callable(callable): return "<function \(callable.name)>"
        }
    }

    /// A number as a Double, with bools as 0/1 (Python's bool is an int).
    var number: Double? {
        switch self {
        case let .bool(value): return value ? 1 : 0
        case let .int(value): return Double(value)
        case let .double(value): return value
        default: return nil
        }
    }

    /// An integer, with bools as 0/1.
    var integer: Int? {
        switch self {
        case let .bool(value): return value ? 1 : 0
        case let .int(value): return value
        default: return nil
        }
    }

    /// Python `==`.
    func equals(_ other: Value) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(a), .string(b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case let (.list(a), .list(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.equals($1) }
        case let (.dict(a), .dict(b)):
            return a.count == b.count && a.entries.allSatisfy { entry in b[entry.key].map(entry.value.equals) ?? false }
        case let (.namespace(a), .namespace(b)): return a === b
        default:
            if let a = integer, let b = other.integer { return a == b }
            if let a = number, let b = other.number { return a == b }
            return false
        }
    }

    /// Python ordering (`<`): numbers, strings by code point, lists lexicographically.
    func less(than other: Value, op: String = "<") throws -> Bool {
        switch (self, other) {
        case let (.string(a), .string(b)):
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
        case let (.list(a), .list(b)):
            for (x, y) in zip(a, b) where !x.equals(y) { return try x.less(than: y, op: op) }
            return a.count < b.count
        default:
            if let a = integer, let b = other.integer { return a < b }
            if let a = number, let b = other.number { return a < b }
            throw EvaluationError(message: "'\(op)' not supported between instances of '\(typeName)' and '\(other.typeName)'")
        }
    }

    /// Elements of a `for` loop: list items, dict keys, string characters; an undefined is empty.
    func iterate() throws -> [Value] {
        switch self {
        case .undefined: return []
        case let .list(items): return items
        case let .dict(map): return map.keys.map(Value.string)
        case let .string(text): return text.unicodeScalars.map { .string(String($0)) }
        default: throw EvaluationError(message: "'\(typeName)' object is not iterable")
        }
    }

    /// Python `len()`; jinja2's `length` filter gives 0 for an undefined.
    func length() throws -> Int {
        switch self {
        case .undefined: return 0
        case let .string(text): return text.unicodeScalars.count
        case let .list(items): return items.count
        case let .dict(map): return map.count
        default: throw EvaluationError(message: "object of type '\(typeName)' has no len()")
        }
    }

    /// Python `in`.
    func contains(_ element: Value) throws -> Bool {
        switch self {
        case let .string(text):
            guard case let .string(needle) = element else {
                throw EvaluationError(message: "'in <string>' requires string as left operand, not \(element.typeName)")
            }
            return PythonString.find(text, needle) != nil
        case let .list(items): return items.contains { $0.equals(element) }
        case let .dict(map):
            guard case let .string(key) = element else { return false }
            return map[key] != nil
        case .undefined: return false
        default: throw EvaluationError(message: "argument of type '\(typeName)' is not iterable")
        }
    }

    /// The error an undefined raises when used for anything but printing, testing or iterating.
    func requireDefined() throws -> Value {
        if case let .undefined(undefined) = self { throw EvaluationError(message: undefined.message) }
        return self
    }
}
