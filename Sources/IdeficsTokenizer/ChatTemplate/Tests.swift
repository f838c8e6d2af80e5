/// jinja2's tests (`x is defined`, `x is divisibleby 3`, ...).
enum Tests {
    static func apply(_ name: String, to value: Value, _ arguments: Arguments) throws -> Bool {
        func operand() throws -> Value {
            guard arguments.positional.count == 1 else {
                throw EvaluationError(message: "test '\(name)' takes one argument (\(arguments.positional.count) given)")
            }
            return arguments.positional[0]
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.number != nil
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .dict = value { return true } else { return false }
        case "callable": if case .callable = value { return true } else { return false }
        case "iterable", "sequence":
            switch value {
            case .undefined, .string, .list, .dict: return true
            default: return false
            }
        case "odd", "even":
            guard let integer = try value.requireDefined().integer else {
                throw EvaluationError(message: "test '\(name)' needs an integer, got \(value.typeName)")
            }
            return (integer % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard let dividend = value.integer, let divisor = try operand().integer, divisor != 0 else {
                throw EvaluationError(message: "divisibleby needs integers and a non-zero divisor")
            }
            return dividend % divisor == 0
        case "lower", "upper":
            guard case let .bool(result) = try Methods.call("is" + name, on: .string(value.str), Arguments()) else { return false }
            return result
        case "eq", "equalto", "==": return value.equals(try operand())
        case "ne", "!=": return !value.equals(try operand())
        case "lt", "lessthan", "<": return try Operators.compare(.less, value, try operand())
        case "le", "<=": return try Operators.compare(.lessEqual, value, try operand())
        case "gt", "greaterthan", ">": return try Operators.compare(.greater, value, try operand())
        case "ge", ">=": return try Operators.compare(.greaterEqual, value, try operand())
        case "in": return try Operators.compare(.isIn, value, try operand())
        case "sameas":
            switch (value, try operand()) {
            case (.none, .none): return true
            case let (.bool(a), .bool(b)): return a == b
            case let (.namespace(a), .namespace(b)): return a === b
            default: return false
            }
        default:
            throw EvaluationError(message: "No test named '\(name)'.")
        }
    }
}
