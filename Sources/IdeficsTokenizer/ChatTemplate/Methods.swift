/// The Python methods of str, dict and list that the sandbox allows and chat templates call.
enum Methods {
    private static let stringMethods: Set<String> = [
        "strip", "lstrip", "rstrip", "split", "startswith", "endswith", "upper", "lower", "title", "capitalize",
        "replace", "find", "count", "join", "splitlines", "format", "isdigit", "isalpha", "isalnum", "isspace",
        "islower", "isupper", "removeprefix", "removesuffix",
    ]
    private static let dictMethods: Set<String> = ["items", "keys", "values", "get"]
    private static let listMethods: Set<String> = ["index", "count"]
    /// Mutating methods, which the immutable sandbox refuses.
    private static let unsafeDictMethods: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]
    private static let unsafeListMethods: Set<String> = ["append", "clear", "extend", "insert", "pop", "remove",
                                                          "reverse", "sort"]

    /// The bound method `name` of `receiver`, if it has one.
    static func lookup(_ name: String, on receiver: Value) -> Value? {
        let (safe, unsafe): (Set<String>, Set<String>)
        switch receiver {
        case .string: (safe, unsafe) = (stringMethods, [])
        case .dict: (safe, unsafe) = (dictMethods, unsafeDictMethods)
        case .list: (safe, unsafe) = (listMethods, unsafeListMethods)
        default: return nil
        }
        if safe.contains(name) { return .callable(.method(receiver: receiver, name: name)) }
        if unsafe.contains(name) {
            return .undefined(Undefined(message: "access to attribute '\(name)' of '\(receiver.typeName)' object is unsafe."))
        }
        return nil
    }

    static func call(_ name: String, on receiver: Value, _ arguments: Arguments) throws -> Value {
        switch receiver {
        case let .string(text): return try stringMethod(name, text, arguments)
        case let .dict(map): return try dictMethod(name, map, arguments)
        case let .list(items): return try listMethod(name, items, arguments)
        default: throw EvaluationError(message: "'\(receiver.typeName)' object has no attribute '\(name)'")
        }
    }

    private static func string(_ value: Value, _ function: String) throws -> String {
        guard case let .string(text) = value else {
            throw EvaluationError(message: "\(function)() argument must be str, not \(value.typeName)")
        }
        return text
    }

    private static func optionalString(_ value: Value, _ function: String) throws -> String? {
        if case .none = value { return nil }
        return try string(value, function)
    }

    private static func integer(_ value: Value, _ function: String) throws -> Int {
        guard let integer = value.integer else {
            throw EvaluationError(message: "\(function)() argument must be int, not \(value.typeName)")
        }
        return integer
    }

    private static func stringMethod(_ name: String, _ text: String, _ arguments: Arguments) throws -> Value {
        let scalars = Array(text.unicodeScalars)
        switch name {
        case "strip", "lstrip", "rstrip":
            let chars = try optionalString(try arguments.bind(name, [("chars", Value.none)])[0], name)
            return .string(PythonString.strip(text, chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "split":
            let bound = try arguments.bind(name, [("sep", Value.none), ("maxsplit", .int(-1))])
            return .list(try PythonString.split(text, try optionalString(bound[0], name), maxSplit: try integer(bound[1], name))
                .map(Value.string))
        case "startswith", "endswith":
            let prefix = try arguments.bind(name, [("prefix", nil)])[0]
            let candidates = try (prefix.list ?? [prefix]).map { try string($0, name) }
            return .bool(candidates.contains { candidate in
                let pattern = Array(candidate.unicodeScalars)
                return name == "startswith" ? scalars.starts(with: pattern) : scalars.reversed().starts(with: pattern.reversed())
            })
        case "upper": return .string(PythonString.upper(text))
        case "lower": return .string(PythonString.lower(text))
        case "title": return .string(PythonString.title(text))
        case "capitalize": return .string(PythonString.capitalize(text))
        case "replace":
            let bound = try arguments.bind(name, [("old", nil), ("new", nil), ("count", .int(-1))])
            return .string(PythonString.replace(text, try string(bound[0], name), try string(bound[1], name),
                                                count: try integer(bound[2], name)))
        case "find":
            let needle = try string(try arguments.bind(name, [("sub", nil)])[0], name)
            return .int(PythonString.find(text, needle) ?? -1)
        case "count":
            let needle = try string(try arguments.bind(name, [("sub", nil)])[0], name)
            if needle.isEmpty { return .int(scalars.count + 1) }
            return .int(try PythonString.split(text, needle, maxSplit: -1).count - 1)
        case "join":
            let items = try arguments.bind(name, [("iterable", nil)])[0].iterate()
            return .string(try items.enumerated().map { index, item in
                guard case let .string(piece) = item else {
                    throw EvaluationError(message: "sequence item \(index): expected str instance, \(item.typeName) found")
                }
                return piece
            }.joined(separator: text))
        case "splitlines":
            return .list(splitLines(scalars).map(Value.string))
        case "format":
            return .string(try format(scalars, arguments))
        case "isdigit":
            return .bool(!scalars.isEmpty && scalars.allSatisfy { [.decimal, .digit].contains($0.properties.numericType) })
        case "isalpha": return .bool(!scalars.isEmpty && scalars.allSatisfy(\.properties.isAlphabetic))
        case "isalnum":
            return .bool(!scalars.isEmpty && scalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(!scalars.isEmpty && scalars.allSatisfy(PythonString.isSpace))
        case "islower", "isupper":
            let cased = scalars.filter(\.properties.isCased)
            let wanted: (Unicode.Scalar) -> Bool = name == "islower" ? { $0.properties.isLowercase } : { $0.properties.isUppercase }
            return .bool(!cased.isEmpty && cased.allSatisfy(wanted))
        case "removeprefix", "removesuffix":
            let affix = Array(try string(try arguments.bind(name, [("affix", nil)])[0], name).unicodeScalars)
            if name == "removeprefix", scalars.starts(with: affix) {
                return .string(String(String.UnicodeScalarView(scalars.dropFirst(affix.count))))
            }
            if name == "removesuffix", !affix.isEmpty, scalars.reversed().starts(with: affix.reversed()) {
                return .string(String(String.UnicodeScalarView(scalars.dropLast(affix.count))))
            }
            return .string(text)
        default:
            throw EvaluationError(message: "'str' object has no attribute '\(name)'")
        }
    }

    /// `str.splitlines()` line boundaries.
    private static func splitLines(_ scalars: [Unicode.Scalar]) -> [String] {
        var lines: [String] = []
        var start = 0, index = 0
        while index < scalars.count {
            let value = scalars[index].value
            if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(value) {
                lines.append(String(String.UnicodeScalarView(scalars[start..<index])))
                index += value == 0x0D && index + 1 < scalars.count && scalars[index + 1] == "\n" ? 2 : 1
                start = index
            } else {
                index += 1
            }
        }
        if start < scalars.count { lines.append(String(String.UnicodeScalarView(scalars[start...]))) }
        return lines
    }

    /// `str.format` with `{}`, `{0}`, `{name}` fields and `{{`/`}}` escapes; format specs are not supported.
    private static func format(_ scalars: [Unicode.Scalar], _ arguments: Arguments) throws -> String {
        var result = ""
        var index = 0, automatic = 0
        while index < scalars.count {
            let scalar = scalars[index]
            if (scalar == "{" || scalar == "}"), index + 1 < scalars.count, scalars[index + 1] == scalar {
                result.unicodeScalars.append(scalar)
                index += 2
                continue
            }
            guard scalar == "{" else {
                guard scalar != "}" else { throw EvaluationError(message: "Single '}' encountered in format string") }
                result.unicodeScalars.append(scalar)
                index += 1
                continue
            }
            guard let close = scalars[index...].firstIndex(of: "}") else {
                throw EvaluationError(message: "Single '{' encountered in format string")
            }
            let field = String(String.UnicodeScalarView(scalars[(index + 1)..<close]))
            guard !field.contains(":"), !field.contains("!") else {
                throw EvaluationError(message: "format specs and conversions in str.format are not supported")
            }
            let value: Value?
            if field.isEmpty {
                value = arguments.positional.indices.contains(automatic) ? arguments.positional[automatic] : nil
                automatic += 1
            } else if let position = Int(field) {
                value = arguments.positional.indices.contains(position) ? arguments.positional[position] : nil
            } else {
                value = arguments.keyword[field]
            }
            guard let value else { throw EvaluationError(message: "str.format: no argument for field '{\(field)}'") }
            result += value.str
            index = close + 1
        }
        return result
    }

    private static func dictMethod(_ name: String, _ map: OrderedMap<Value>, _ arguments: Arguments) throws -> Value {
        switch name {
        case "items":
            _ = try arguments.bind(name, [])
            return .list(map.entries.map { .list([.string($0.key), $0.value]) })
        case "keys":
            _ = try arguments.bind(name, [])
            return .list(map.keys.map(Value.string))
        case "values":
            _ = try arguments.bind(name, [])
            return .list(map.values)
        default:
            let bound = try arguments.bind(name, [("key", nil), ("default", Value.none)])
            guard case let .string(key) = bound[0] else { return bound[1] }
            return map[key] ?? bound[1]
        }
    }

    private static func listMethod(_ name: String, _ items: [Value], _ arguments: Arguments) throws -> Value {
        let element = try arguments.bind(name, [("value", nil)])[0]
        if name == "count" { return .int(items.filter { $0.equals(element) }.count) }
        guard let index = items.firstIndex(where: { $0.equals(element) }) else {
            throw EvaluationError(message: "\(element.repr) is not in list")
        }
        return .int(index)
    }
}

extension Value {
    var list: [Value]? {
        if case let .list(items) = self { return items }
        return nil
    }
}
