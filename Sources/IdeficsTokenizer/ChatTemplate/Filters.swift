import Foundation

/// jinja2's built-in filters used by chat templates, plus transformers' `tojson`.
enum Filters {
    static func apply(_ name: String, to value: Value, _ arguments: Arguments, interpreter: Interpreter) throws -> Value {
        switch name {
        case "trim":
            let chars = try arguments.bind(name, [("chars", Value.none)])[0]
            return .string(PythonString.strip(value.str, chars.isNone ? nil : chars.str, leading: true, trailing: true))
        case "length", "count":
            return .int(try value.length())
        case "upper": return .string(PythonString.upper(value.str))
        case "lower": return .string(PythonString.lower(value.str))
        case "capitalize": return .string(PythonString.capitalize(value.str))
        case "title": return .string(title(value.str))
        case "string", "safe": return .string(value.str)
        case "e", "escape": return .string(escapeHTML(value.str))
        case "replace":
            let bound = try arguments.bind(name, [("old", nil), ("new", nil), ("count", Value.none)])
            let count = bound[2].isNone ? -1 : try integerArgument(bound[2], name)
            return .string(PythonString.replace(value.str, bound[0].str, bound[1].str, count: count))
        case "join":
            let bound = try arguments.bind(name, [("d", .string("")), ("attribute", Value.none)])
            var items = try value.iterate()
            if !bound[1].isNone { items = try items.map { try attribute(bound[1], of: $0) } }
            return .string(items.map(\.str).joined(separator: bound[0].str))
        case "default", "d":
            let bound = try arguments.bind(name, [("default_value", .string("")), ("boolean", .bool(false))])
            return value.isUndefined || (bound[1].isTruthy && !value.isTruthy) ? bound[0] : value
        case "first", "last":
            _ = try arguments.bind(name, [])
            let items = try value.iterate()
            return (name == "first" ? items.first : items.last)
                ?? .undefined(Undefined(message: "No \(name) item, sequence was empty."))
        case "list":
            return .list(try value.iterate())
        case "reverse":
            if case let .string(text) = value { return .string(String(String.UnicodeScalarView(text.unicodeScalars.reversed()))) }
            return .list(try value.iterate().reversed())
        case "int":
            let bound = try arguments.bind(name, [("default", .int(0)), ("base", .int(10))])
            return try toInteger(value, base: try integerArgument(bound[1], name)) ?? bound[0]
        case "float":
            let fallback = try arguments.bind(name, [("default", .double(0))])[0]
            return try toDouble(value).map(Value.double) ?? fallback
        case "abs":
            switch try value.requireDefined() {
            case let .double(number): return .double(number.magnitude)
            default:
                guard let integer = value.integer else { throw EvaluationError(message: "bad operand type for abs(): '\(value.typeName)'") }
                return .int(integer.magnitude > Int.max.magnitude ? Int.max : abs(integer))
            }
        case "round":
            let bound = try arguments.bind(name, [("precision", .int(0)), ("method", .string("common"))])
            guard let number = try value.requireDefined().number else {
                throw EvaluationError(message: "type \(value.typeName) doesn't define __round__ method")
            }
            let scale = pow10(try integerArgument(bound[0], name))
            let rule: FloatingPointRoundingRule = bound[1].str == "floor" ? .down : bound[1].str == "ceil" ? .up : .toNearestOrEven
            return .double((number * scale).rounded(rule) / scale)
        case "items":
            _ = try arguments.bind(name, [])
            switch value {
            case .undefined: return .list([])
            case let .dict(map): return .list(map.entries.map { .list([.string($0.key), $0.value]) })
            default: throw EvaluationError(message: "Can only get item pairs from a mapping.")
            }
        case "tojson":
            let bound = try arguments.bind(name, [("ensure_ascii", .bool(false)), ("indent", Value.none),
                                                  ("separators", Value.none), ("sort_keys", .bool(false))])
            return .string(try JSON.dumps(value, ensureASCII: bound[0].isTruthy, indent: bound[1], separators: bound[2],
                                          sortKeys: bound[3].isTruthy))
        case "indent":
            let bound = try arguments.bind(name, [("width", .int(4)), ("first", .bool(false)), ("blank", .bool(false))])
            return .string(try indent(value.str, width: bound[0], first: bound[1].isTruthy, blank: bound[2].isTruthy))
        case "map":
            return .list(try map(value, arguments, interpreter: interpreter))
        case "select", "reject", "selectattr", "rejectattr":
            return .list(try select(value, name, arguments))
        case "unique":
            let bound = try arguments.bind(name, [("case_sensitive", .bool(false)), ("attribute", Value.none)])
            var seen: [Value] = [], result: [Value] = []
            for item in try value.iterate() {
                let key = try sortKey(item, caseSensitive: bound[0].isTruthy, attribute: bound[1])
                if !seen.contains(where: { $0.equals(key) }) {
                    seen.append(key)
                    result.append(item)
                }
            }
            return .list(result)
        case "sort":
            let bound = try arguments.bind(name, [("reverse", .bool(false)), ("case_sensitive", .bool(false)),
                                                  ("attribute", Value.none)])
            let keyed = try value.iterate().map { ($0, try sortKey($0, caseSensitive: bound[1].isTruthy, attribute: bound[2])) }
            let reverse = bound[0].isTruthy
            return .list(try stableSort(keyed, reverse: reverse).map(\.0))
        case "sum":
            let bound = try arguments.bind(name, [("attribute", Value.none), ("start", .int(0))])
            return try value.iterate().reduce(bound[1]) { total, item in
                try Operators.apply(.add, total, bound[0].isNone ? item : try attribute(bound[0], of: item))
            }
        default:
            throw EvaluationError(message: "No filter named '\(name)'.")
        }
    }

    private static func integerArgument(_ value: Value, _ function: String) throws -> Int {
        guard let integer = value.integer else {
            throw EvaluationError(message: "\(function): expected an integer argument, got \(value.typeName)")
        }
        return integer
    }

    private static func pow10(_ exponent: Int) -> Double {
        (0..<abs(exponent)).reduce(1.0) { value, _ in exponent < 0 ? value / 10 : value * 10 }
    }

    /// jinja2's `int` filter: `int(value, base)`, else `int(float(value))`, else nil (the default).
    private static func toInteger(_ value: Value, base: Int) throws -> Value? {
        switch try value.requireDefined() {
        case let .string(text):
            let trimmed = PythonString.strip(text, nil, leading: true, trailing: true).replacingOccurrences(of: "_", with: "")
            if let integer = Int(trimmed, radix: base) { return .int(integer) }
        case let .double(number):
            return number.isFinite && number.magnitude < 9.2e18 ? .int(Int(number)) : nil
        default:
            if let integer = value.integer { return .int(integer) }
        }
        guard let number = try toDouble(value), number.isFinite, number.magnitude < 9.2e18 else { return nil }
        return .int(Int(number))
    }

    /// Python `float(value)`; nil where Python raises TypeError or ValueError.
    private static func toDouble(_ value: Value) throws -> Double? {
        if case let .string(text) = try value.requireDefined() {
            let trimmed = PythonString.strip(text, nil, leading: true, trailing: true).lowercased()
            switch trimmed {
            case "inf", "+inf", "infinity", "+infinity": return .infinity
            case "-inf", "-infinity": return -.infinity
            case "nan", "+nan", "-nan": return .nan
            default: return trimmed.contains(where: { $0.isLetter && $0 != "e" }) ? nil : Double(trimmed)
            }
        }
        return value.number
    }

    /// jinja2's `title` filter: words start after `-`, whitespace and opening brackets.
    private static func title(_ text: String) -> String {
        let isSeparator = { (scalar: Unicode.Scalar) in "-({[<".unicodeScalars.contains(scalar) || PythonString.isSpace(scalar) }
        var result = ""
        var previousSeparator: Bool?
        for scalar in text.unicodeScalars {
            let separator = isSeparator(scalar)
            let startsRun = previousSeparator != separator
            result += startsRun ? PythonString.upper(String(scalar)) : PythonString.lower(String(scalar))
            previousSeparator = separator
        }
        return result
    }

    private static func escapeHTML(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&#34;"
            case "'": result += "&#39;"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func indent(_ text: String, width: Value, first: Bool, blank: Bool) throws -> String {
        let indentation: String
        if case let .string(given) = width { indentation = given } else {
            indentation = String(repeating: " ", count: max(0, try integerArgument(width, "indent")))
        }
        guard case var .list(lines) = try Methods.call("splitlines", on: .string(text + "\n"), Arguments()) else { return text }
        var result: String
        if blank {
            result = lines.map(\.str).joined(separator: "\n" + indentation)
        } else {
            result = lines.removeFirst().str
            if !lines.isEmpty {
                result += "\n" + lines.map { $0.str.isEmpty ? "" : indentation + $0.str }.joined(separator: "\n")
            }
        }
        return first ? indentation + result : result
    }

    /// jinja2's attribute getter: a dotted path of item lookups, digits as indices.
    private static func attribute(_ path: Value, of item: Value) throws -> Value {
        var current = item
        for part in path.str.split(separator: ".", omittingEmptySubsequences: false) {
            current = try Access.item(of: current, Int(part).map(Value.int) ?? .string(String(part)))
        }
        return current
    }

    private static func sortKey(_ item: Value, caseSensitive: Bool, attribute path: Value) throws -> Value {
        let key = path.isNone ? item : try attribute(path, of: item)
        if !caseSensitive, case let .string(text) = key { return .string(PythonString.lower(text)) }
        return key
    }

    private static func stableSort(_ keyed: [(Value, Value)], reverse: Bool) throws -> [(Value, Value)] {
        var failure: Error?
        let sorted = keyed.enumerated().sorted { a, b in
            do {
                if try a.element.1.less(than: b.element.1) { return !reverse }
                if try b.element.1.less(than: a.element.1) { return reverse }
            } catch { failure = error }
            return a.offset < b.offset
        }
        if let failure { throw failure }
        return sorted.map(\.element)
    }

    /// `map(attribute='x', default=...)` or `map('filter', args...)`.
    private static func map(_ value: Value, _ arguments: Arguments, interpreter: Interpreter) throws -> [Value] {
        let items = try value.iterate()
        if let path = arguments.keyword["attribute"] {
            let fallback = arguments.keyword["default"]
            return try items.map { item in
                let result = try attribute(path, of: item)
                return result.isUndefined ? fallback ?? result : result
            }
        }
        guard case let .string(filter)? = arguments.positional.first else {
            throw EvaluationError(message: "map requires a filter name or attribute=")
        }
        let rest = Arguments(positional: Array(arguments.positional.dropFirst()), keyword: arguments.keyword)
        return try items.map { try apply(filter, to: $0, rest, interpreter: interpreter) }
    }

    /// `select(test, args)`, `reject`, `selectattr(attribute, test, args)`, `rejectattr`; without a test the value's
    /// truthiness decides.
    private static func select(_ value: Value, _ name: String, _ arguments: Arguments) throws -> [Value] {
        var positional = arguments.positional
        let byAttribute = name.hasSuffix("attr")
        var path: Value?
        if byAttribute {
            guard !positional.isEmpty else { throw EvaluationError(message: "Missing parameter for attribute name") }
            path = positional.removeFirst()
        }
        let test = positional.isEmpty ? nil : positional.removeFirst().str
        let testArguments = Arguments(positional: positional, keyword: arguments.keyword)
        let keep = name.hasPrefix("select")
        return try value.iterate().filter { item in
            let subject = try path.map { try attribute($0, of: item) } ?? item
            let passes = try test.map { try Tests.apply($0, to: subject, testArguments) } ?? subject.isTruthy
            return passes == keep
        }
    }
}

extension Value {
    var isNone: Bool {
        if case .none = self { return true }
        return false
    }
}

