/// Renders a parsed template once. Holds the variable scopes of one render; a template is rendered by a fresh
/// interpreter each time, so a parsed template can be shared and rendered concurrently.
final class Interpreter {
    /// Bounds that keep a hostile template from hanging or exhausting the stack.
    static let maxIterations = 100_000
    static let maxCallDepth = 100
    static let maxOutputBytes = 256 << 20

    private enum Flow { case normal, breakLoop, continueLoop }

    /// Innermost last. The first frame holds the render context and top-level assignments.
    private var frames: [[String: Value]]
    private var iterations = 0
    private var callDepth = 0

    init(context: [String: Value]) {
        frames = [context]
    }

    func render(_ nodes: [Node]) throws -> String {
        var output = ""
        _ = try execute(nodes, into: &output)
        return output
    }

    // MARK: Statements

    private func execute(_ nodes: [Node], into output: inout String) throws -> Flow {
        for node in nodes {
            switch node {
            case let .text(text):
                output += text
            case let .output(expr):
                output += try evaluate(expr).str
                guard output.utf8.count <= Self.maxOutputBytes else {
                    throw TemplateError.runtime(message: "output longer than \(Self.maxOutputBytes) bytes", line: expr.line)
                }
            case let .conditional(branches, otherwise):
                let body = try branches.first { try evaluate($0.condition).isTruthy }?.body ?? otherwise
                let flow = try execute(body, into: &output)
                if flow != .normal { return flow }
            case let .loop(loop):
                try run(loop, into: &output)
            case let .assign(target, expr):
                try assign(target, try evaluate(expr), line: expr.line)
            case let .assignBlock(name, body):
                var captured = ""
                _ = try execute(body, into: &captured)
                frames[frames.count - 1][name] = .string(captured)
            case let .macro(macro):
                frames[frames.count - 1][macro.name] = .callable(.macro(macro))
            case let .block(body):
                let flow = try execute(body, into: &output)
                if flow != .normal { return flow }
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            }
        }
        return .normal
    }

    private func bind(_ targets: [String], to value: Value, line: Int) throws {
        guard targets.count > 1 else {
            frames[frames.count - 1][targets[0]] = value
            return
        }
        let items = try located(line) { try value.iterate() }
        guard items.count == targets.count else {
            throw TemplateError.runtime(
                message: items.count > targets.count ? "too many values to unpack (expected \(targets.count))"
                    : "not enough values to unpack (expected \(targets.count), got \(items.count))",
                line: line)
        }
        for (name, item) in zip(targets, items) { frames[frames.count - 1][name] = item }
    }

    private func assign(_ target: AssignTarget, _ value: Value, line: Int) throws {
        switch target {
        case let .names(names):
            try bind(names, to: value, line: line)
        case let .attribute(object, name):
            guard case let .namespace(namespace)? = lookup(object) else {
                throw TemplateError.runtime(message: "cannot assign attribute on non-namespace object", line: line)
            }
            try located(line) { try Globals.checkNamespaceKey(name) }
            namespace.attributes[name] = value
        }
    }

    /// Each iteration of a `for` loop runs in a fresh scope: assignments in the body neither leak out nor carry over
    /// to the next iteration (jinja2 semantics).
    private func run(_ loop: Node.Loop, into output: inout String) throws {
        var items = try located(loop.iterable.line) { try evaluate(loop.iterable).iterate() }
        frames.append([:])
        defer { frames.removeLast() }
        if let filter = loop.filter {
            items = try items.filter { item in
                try bind(loop.targets, to: item, line: filter.line)
                return try evaluate(filter).isTruthy
            }
        }
        if items.isEmpty {
            _ = try execute(loop.otherwise, into: &output)
            return
        }
        for (index, item) in items.enumerated() {
            iterations += 1
            guard iterations <= Self.maxIterations else {
                throw TemplateError.runtime(message: "more than \(Self.maxIterations) loop iterations", line: loop.iterable.line)
            }
            frames[frames.count - 1] = [:]
            try bind(loop.targets, to: item, line: loop.iterable.line)
            frames[frames.count - 1]["loop"] = Self.loopVariable(index: index, items: items)
            if try execute(loop.body, into: &output) == .breakLoop { break }
        }
    }

    private static func loopVariable(index: Int, items: [Value]) -> Value {
        let count = items.count
        let cycle = Callable.builtin(name: "cycle") { arguments in
            guard !arguments.positional.isEmpty else { throw EvaluationError(message: "no items for cycling given") }
            return arguments.positional[index % arguments.positional.count]
        }
        let noItem = Value.undefined(Undefined(message: "there is no previous or next item"))
        return .dict([
            "index": .int(index + 1), "index0": .int(index), "revindex": .int(count - index),
            "revindex0": .int(count - index - 1), "first": .bool(index == 0), "last": .bool(index == count - 1),
            "length": .int(count), "depth": .int(1), "depth0": .int(0),
            "previtem": index > 0 ? items[index - 1] : noItem, "nextitem": index + 1 < count ? items[index + 1] : noItem,
            "cycle": .callable(cycle),
        ])
    }

    // MARK: Expressions

    private func lookup(_ name: String) -> Value? {
        for frame in frames.reversed() {
            if let value = frame[name] { return value }
        }
        return Globals.function(named: name)
    }

    /// Runs `body`, giving an error without a line the line of the expression at hand.
    private func located<T>(_ line: Int, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as EvaluationError {
            throw TemplateError.runtime(message: error.message, line: line)
        }
    }

    func evaluate(_ expr: Expr) throws -> Value {
        try located(expr.line) { try evaluateKind(expr) }
    }

    private func evaluateKind(_ expr: Expr) throws -> Value {
        switch expr.kind {
        case let .literal(literal):
            switch literal {
            case .none: return .none
            case let .bool(value): return .bool(value)
            case let .int(value): return .int(value)
            case let .double(value): return .double(value)
            case let .string(value): return .string(value)
            }
        case let .name(name):
            return lookup(name) ?? .undefined(Undefined(message: "'\(name)' is undefined"))
        case let .list(items), let .tuple(items):
            return .list(try items.map(evaluate))
        case let .dict(entries):
            var map = OrderedMap<Value>()
            for entry in entries {
                guard case let .string(key) = try evaluate(entry.key) else {
                    throw EvaluationError(message: "only string dict keys are supported")
                }
                map[key] = try evaluate(entry.value)
            }
            return .dict(map)
        case let .attribute(object, name):
            return try Access.attribute(of: try evaluate(object), name)
        case let .item(object, key):
            return try Access.item(of: try evaluate(object), try evaluate(key))
        case let .slice(object, start, stop, step):
            return try Access.slice(try evaluate(object), start: try start.map(evaluate), stop: try stop.map(evaluate),
                                    step: try step.map(evaluate))
        case let .call(callee, arguments):
            return try call(try evaluate(callee), try evaluate(arguments))
        case let .filter(value, name, arguments):
            return try Filters.apply(name, to: try evaluate(value), try evaluate(arguments), interpreter: self)
        case let .test(value, name, arguments, negated):
            let result = try Tests.apply(name, to: try evaluate(value), try evaluate(arguments))
            return .bool(result != negated)
        case let .not(operand):
            return .bool(!(try evaluate(operand).isTruthy))
        case let .negate(operand):
            return try Operators.negate(try evaluate(operand))
        case let .plus(operand):
            return try Operators.plus(try evaluate(operand))
        case let .binary(op, left, right):
            return try Operators.apply(op, try evaluate(left), try evaluate(right))
        case let .and(left, right):
            let value = try evaluate(left)
            return value.isTruthy ? try evaluate(right) : value
        case let .or(left, right):
            let value = try evaluate(left)
            return value.isTruthy ? value : try evaluate(right)
        case let .compare(first, operations):
            var left = try evaluate(first)
            for (op, operand) in operations {
                let right = try evaluate(operand)
                guard try Operators.compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .conditional(then, condition, otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(then) }
            guard let otherwise else {
                return .undefined(Undefined(
                    message: "the inline if-expression on line \(expr.line) evaluated to false and no else section was defined."))
            }
            return try evaluate(otherwise)
        }
    }

    private func evaluate(_ arguments: [Expr.Argument]) throws -> Arguments {
        var result = Arguments()
        for argument in arguments {
            let value = try evaluate(argument.value)
            if let name = argument.name {
                guard result.keyword[name] == nil else { throw EvaluationError(message: "keyword argument repeated: \(name)") }
                result.keyword[name] = value
            } else {
                result.positional.append(value)
            }
        }
        return result
    }

    func call(_ callee: Value, _ arguments: Arguments) throws -> Value {
        guard case let .callable(callable) = callee else {
            _ = try callee.requireDefined()
            throw EvaluationError(message: "'\(callee.typeName)' object is not callable")
        }
        switch callable {
        case let .builtin(_, body): return try body(arguments)
        case let .method(receiver, name): return try Methods.call(name, on: receiver, arguments)
        case let .macro(macro): return try call(macro, arguments)
        }
    }

    /// A macro sees the top-level scope and its parameters; its output is its value.
    private func call(_ macro: Macro, _ arguments: Arguments) throws -> Value {
        guard arguments.positional.count <= macro.parameters.count else {
            throw EvaluationError(message: "macro '\(macro.name)' takes not more than \(macro.parameters.count) argument(s)")
        }
        for key in arguments.keyword.keys where !macro.parameters.contains(where: { $0.name == key }) {
            throw EvaluationError(message: "macro '\(macro.name)' takes no keyword argument '\(key)'")
        }
        callDepth += 1
        let savedFrames = frames
        defer {
            callDepth -= 1
            frames = savedFrames
        }
        guard callDepth <= Self.maxCallDepth else {
            throw EvaluationError(message: "macro calls nested deeper than \(Self.maxCallDepth)")
        }
        frames = [frames[0], [:]]
        for (index, parameter) in macro.parameters.enumerated() {
            let value: Value
            if index < arguments.positional.count {
                value = arguments.positional[index]
            } else if let keyword = arguments.keyword[parameter.name] {
                value = keyword
            } else if let defaultValue = parameter.defaultValue {
                value = try evaluate(defaultValue)
            } else {
                value = .undefined(Undefined(message: "parameter '\(parameter.name)' was not provided"))
            }
            frames[1][parameter.name] = value
        }
        var output = ""
        _ = try execute(macro.body, into: &output)
        return .string(output)
    }
}
