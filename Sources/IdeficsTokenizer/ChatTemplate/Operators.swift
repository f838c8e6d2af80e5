import Foundation

/// Python's arithmetic and comparison operators on runtime values.
enum Operators {
    private static func unsupported(_ op: String, _ a: Value, _ b: Value) -> EvaluationError {
        EvaluationError(message: "unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
    }

    private static func checked(_ result: (partialValue: Int, overflow: Bool)) throws -> Value {
        guard !result.overflow else { throw EvaluationError(message: "integer overflow") }
        return .int(result.partialValue)
    }

    /// `str * n` and `list * n`, bounded like the output so that a template cannot exhaust memory.
    private static func repeated<T>(_ items: [T], _ count: Int) throws -> [T] {
        guard count > 0 else { return [] }
        guard items.count.multipliedReportingOverflow(by: count).partialValue <= Interpreter.maxOutputBytes else {
            throw EvaluationError(message: "repetition result too large")
        }
        return Array([[T]](repeating: items, count: count).joined())
    }

    static func apply(_ op: BinaryOperator, _ a: Value, _ b: Value) throws -> Value {
        if op == .concat { return .string(a.str + b.str) }
        let a = try a.requireDefined(), b = try b.requireDefined()
        switch (op, a, b) {
        case let (.add, .string(x), .string(y)): return .string(x + y)
        case let (.add, .list(x), .list(y)): return .list(x + y)
        case (.add, .string, _):
            throw EvaluationError(message: "can only concatenate str (not \"\(b.typeName)\") to str")
        case (.add, .list, _):
            throw EvaluationError(message: "can only concatenate list (not \"\(b.typeName)\") to list")
        case let (.multiply, .string(text), _) where b.integer != nil:
            return .string(String(String.UnicodeScalarView(try repeated(Array(text.unicodeScalars), b.integer!))))
        case let (.multiply, _, .string(text)) where a.integer != nil:
            return .string(String(String.UnicodeScalarView(try repeated(Array(text.unicodeScalars), a.integer!))))
        case let (.multiply, .list(items), _) where b.integer != nil: return .list(try repeated(items, b.integer!))
        case let (.multiply, _, .list(items)) where a.integer != nil: return .list(try repeated(items, a.integer!))
        case (.modulo, .string, _): throw EvaluationError(message: "'%' string formatting is not supported")
        default: break
        }
        if let x = a.integer, let y = b.integer { return try integerOperation(op, x, y) }
        guard let x = a.number, let y = b.number else { throw unsupported(op.rawValue, a, b) }
        switch op {
        case .add: return .double(x + y)
        case .subtract: return .double(x - y)
        case .multiply: return .double(x * y)
        case .divide:
            guard y != 0 else { throw EvaluationError(message: "float division by zero") }
            return .double(x / y)
        case .floorDivide:
            guard y != 0 else { throw EvaluationError(message: "float floor division by zero") }
            return .double((x / y).rounded(.down))
        case .modulo:
            guard y != 0 else { throw EvaluationError(message: "float modulo") }
            let remainder = fmod(x, y)
            return .double(remainder != 0 && (remainder < 0) != (y < 0) ? remainder + y : remainder)
        case .power: return .double(pow(x, y))
        case .concat: preconditionFailure("handled above")
        }
    }

    private static func integerOperation(_ op: BinaryOperator, _ x: Int, _ y: Int) throws -> Value {
        switch op {
        case .add: return try checked(x.addingReportingOverflow(y))
        case .subtract: return try checked(x.subtractingReportingOverflow(y))
        case .multiply: return try checked(x.multipliedReportingOverflow(by: y))
        case .divide:
            guard y != 0 else { throw EvaluationError(message: "division by zero") }
            return .double(Double(x) / Double(y))
        case .floorDivide, .modulo:
            guard y != 0 else { throw EvaluationError(message: "integer division or modulo by zero") }
            var quotient = x / y, remainder = x % y
            if remainder != 0, (remainder < 0) != (y < 0) {
                quotient -= 1
                remainder += y
            }
            return .int(op == .floorDivide ? quotient : remainder)
        case .power:
            guard y >= 0 else { return .double(pow(Double(x), Double(y))) }
            if x.magnitude <= 1 { return .int(x == -1 && y % 2 == 1 ? -1 : x == 0 && y > 0 ? 0 : 1) }
            guard y < Int.bitWidth else { throw EvaluationError(message: "integer overflow") }
            var result = 1
            for _ in 0..<y { result = try checked(result.multipliedReportingOverflow(by: x)).integer! }
            return .int(result)
        case .concat: preconditionFailure("handled by the caller")
        }
    }

    static func negate(_ value: Value) throws -> Value {
        switch try value.requireDefined() {
        case let .double(x): return .double(-x)
        default:
            guard let x = value.integer else {
                throw EvaluationError(message: "bad operand type for unary -: '\(value.typeName)'")
            }
            return try checked((0).subtractingReportingOverflow(x))
        }
    }

    static func plus(_ value: Value) throws -> Value {
        switch try value.requireDefined() {
        case .double, .int: return value
        case let .bool(flag): return .int(flag ? 1 : 0)
        default: throw EvaluationError(message: "bad operand type for unary +: '\(value.typeName)'")
        }
    }

    static func compare(_ op: CompareOperator, _ a: Value, _ b: Value) throws -> Bool {
        switch op {
        case .equal: return a.equals(b)
        case .notEqual: return !a.equals(b)
        case .isIn: return try b.contains(a)
        case .notIn: return try !b.contains(a)
        case .less: return try a.requireDefined().less(than: b.requireDefined(), op: "<")
        case .greater: return try b.requireDefined().less(than: a.requireDefined(), op: ">")
        case .lessEqual: return try !b.requireDefined().less(than: a.requireDefined(), op: "<=")
        case .greaterEqual: return try !a.requireDefined().less(than: b.requireDefined(), op: ">=")
        }
    }
}
