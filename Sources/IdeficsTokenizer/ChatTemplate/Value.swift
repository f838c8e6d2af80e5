/// A runtime value, with the Python types jinja2 templates operate on. Tuples are lists.
indirect enum Value {
    case undefined(Undefined)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case dict(OrderedMap<Value>)
    case namespace(Namespace)
    case callable(Callable)

    init(_ value: TemplateValue) {
        switch value {
        case .null: self = .none
        case let .bool(bool): self = .bool(bool)
        case let .int(int): self = .int(int)
        case let .double(double): self = .double(double)
        case let .string(string): self = .string(string)
        case let .array(array): self = .list(array.map(Value.init))
        case let .object(object): self = .dict(object.mapValues(Value.init))
        }
    }
}

/// jinja2's default `Undefined`: falsy, prints as "", iterates as empty, equals only another undefined; any other
/// use fails with `message` ("'x' is undefined", "'dict object' has no attribute 'y'").
struct Undefined {
    let message: String
}

/// `namespace(...)`: the one mutable object templates have; shared by reference, as in Python.
final class Namespace {
    var attributes: OrderedMap<Value>

    init(_ attributes: OrderedMap<Value>) { self.attributes = attributes }
}

/// Arguments of a call, filter or test, after evaluation.
struct Arguments {
    var positional: [Value] = []
    var keyword: OrderedMap<Value> = [:]

    /// Binds to Python-style parameters: positionally, then by name, else the default (nil: required).
    func bind(_ function: String, _ parameters: [(String, Value?)]) throws -> [Value] {
        guard positional.count <= parameters.count else {
            throw EvaluationError(message: "\(function)() takes at most \(parameters.count) arguments (\(positional.count) given)")
        }
        for key in keyword.keys where !parameters.contains(where: { $0.0 == key }) {
            throw EvaluationError(message: "\(function)() got an unexpected keyword argument '\(key)'")
        }
        return try parameters.enumerated().map { index, parameter in
            if index < positional.count {
                if keyword[parameter.0] != nil {
                    throw EvaluationError(message: "\(function)() got multiple values for argument '\(parameter.0)'")
                }
                return positional[index]
            }
            if let value = keyword[parameter.0] ?? parameter.1 { return value }
            throw EvaluationError(message: "\(function)() missing required argument '\(parameter.0)'")
        }
    }
}

/// Something a template can call.
indirect enum Callable {
    /// A global function (`range`, `namespace`, `raise_exception`, ...) or `loop.cycle`.
    case builtin(name: String, body: (Arguments) throws -> Value)
    case macro(Macro)
    /// A method looked up on a value, e.g. `content.strip`, `message.get`.
    case method(receiver: Value, name: String)

    var name: String {
        switch self {
        case let .builtin(name, _): return name
        case let .macro(macro): return macro.name
        case let .method(_, name): return name
        }
    }
}
