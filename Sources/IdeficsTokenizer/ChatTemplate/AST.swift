/// An expression with the template line it starts on, for runtime error messages.
struct Expr {
    indirect enum Kind {
        case literal(Literal)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(key: Expr, value: Expr)])
        case attribute(Expr, String)
        case item(Expr, Expr)
        case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
        case call(Expr, [Argument])
        case filter(Expr, name: String, [Argument])
        case test(Expr, name: String, [Argument], negated: Bool)
        case not(Expr)
        case negate(Expr)
        case plus(Expr)
        case binary(BinaryOperator, Expr, Expr)
        case and(Expr, Expr)
        case or(Expr, Expr)
        case compare(Expr, [(op: CompareOperator, Expr)])
        case conditional(then: Expr, condition: Expr, otherwise: Expr?)
    }

    enum Literal {
        case none, bool(Bool), int(Int), double(Double), string(String)
    }

    /// `name=value` arguments have a name; positional ones do not.
    struct Argument {
        var name: String?
        var value: Expr
    }

    var kind: Kind
    var line: Int
}

enum BinaryOperator: String {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**"
    case concat = "~"
}

enum CompareOperator: String {
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case isIn = "in", notIn = "not in"
}

/// A template statement. Bodies are node lists.
indirect enum Node {
    case text(String)
    case output(Expr)
    case conditional(branches: [(condition: Expr, body: [Node])], otherwise: [Node])
    case loop(Loop)
    case assign(AssignTarget, Expr)
    case assignBlock(name: String, body: [Node])
    case macro(Macro)
    /// `{% generation %}` (transformers' assistant-mask extension) renders its body unchanged.
    case block([Node])
    case breakLoop
    case continueLoop

    struct Loop {
        var targets: [String]
        var iterable: Expr
        var filter: Expr?
        var body: [Node]
        var otherwise: [Node]
    }
}

enum AssignTarget {
    case names([String])
    /// `ns.attribute = value`, allowed on namespace objects only.
    case attribute(object: String, name: String)
}

/// `{% macro name(a, b=default) %}`; shared by reference so that recursive macros do not copy their bodies.
final class Macro {
    let name: String
    let parameters: [(name: String, defaultValue: Expr?)]
    let body: [Node]

    init(name: String, parameters: [(name: String, defaultValue: Expr?)], body: [Node]) {
        self.name = name
        self.parameters = parameters
        self.body = body
    }
}
