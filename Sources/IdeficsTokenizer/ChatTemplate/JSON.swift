/// Python's `json.dumps`, which transformers' `tojson` filter calls (no HTML escaping, unlike jinja2's).
enum JSON {
    static func dumps(_ value: Value, ensureASCII: Bool, indent: Value, separators: Value, sortKeys: Bool) throws -> String {
        let indentUnit: String?
        switch indent {
        case .none: indentUnit = nil
        case let .string(text): indentUnit = text
        default:
            guard let width = indent.integer else { throw EvaluationError(message: "tojson: indent must be an integer or string") }
            indentUnit = String(repeating: " ", count: max(0, width))
        }
        var itemSeparator = indentUnit == nil ? ", " : ",", keySeparator = ": "
        if case let .list(pair) = separators {
            guard pair.count == 2, case let .string(item) = pair[0], case let .string(key) = pair[1] else {
                throw EvaluationError(message: "tojson: separators must be two strings")
            }
            (itemSeparator, keySeparator) = (item, key)
        }
        var encoder = Encoder(ensureASCII: ensureASCII, indent: indentUnit, itemSeparator: itemSeparator,
                              keySeparator: keySeparator, sortKeys: sortKeys)
        try encoder.encode(value, level: 0)
        return encoder.output
    }

    private struct Encoder {
        let ensureASCII: Bool
        let indent: String?
        let itemSeparator: String
        let keySeparator: String
        let sortKeys: Bool
        var output = ""

        mutating func encode(_ value: Value, level: Int) throws {
            guard level < Interpreter.maxCallDepth else { throw EvaluationError(message: "tojson: nesting too deep") }
            switch value {
            case .none: output += "null"
            case let .bool(flag): output += flag ? "true" : "false"
            case let .int(integer): output += String(integer)
            case let .double(number):
                output += number.isNaN ? "NaN" : number.isInfinite ? (number < 0 ? "-Infinity" : "Infinity") : number.description
            case let .string(text): output += quote(text)
            case let .list(items):
                try container("[", "]", items, level: level) { encoder, item in try encoder.encode(item, level: level + 1) }
            case let .dict(map):
                let keys = sortKeys ? map.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) } : map.keys
                try container("{", "}", keys, level: level) { encoder, key in
                    encoder.output += encoder.quote(key) + encoder.keySeparator
                    try encoder.encode(map[key]!, level: level + 1)
                }
            case .undefined, .namespace, .callable:
                throw EvaluationError(message: "Object of type \(value.typeName) is not JSON serializable")
            }
        }

        private mutating func container<T>(_ open: String, _ close: String, _ items: [T], level: Int,
                                           _ encodeItem: (inout Encoder, T) throws -> Void) throws {
            guard !items.isEmpty else {
                output += open + close
                return
            }
            output += open
            let newline = indent.map { "\n" + String(repeating: $0, count: level + 1) } ?? ""
            for (index, item) in items.enumerated() {
                output += (index > 0 ? itemSeparator : "") + newline
                try encodeItem(&self, item)
            }
            output += indent.map { "\n" + String(repeating: $0, count: level) } ?? ""
            output += close
        }

        func quote(_ text: String) -> String {
            var result = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": result += "\\\""
                case "\\": result += "\\\\"
                case "\n": result += "\\n"
                case "\r": result += "\\r"
                case "\t": result += "\\t"
                case "\u{08}": result += "\\b"
                case "\u{0C}": result += "\\f"
                default:
                    if scalar.value < 0x20 || (ensureASCII && scalar.value > 0x7E) {
                        for unit in String(scalar).utf16 { result += "\\u" + hex4(unit) }
                    } else {
                        result.unicodeScalars.append(scalar)
                    }
                }
            }
            return result + "\""
        }

        private func hex4(_ unit: UInt16) -> String {
            let digits = String(unit, radix: 16)
            return String(repeating: "0", count: 4 - digits.count) + digits
        }
    }
}
