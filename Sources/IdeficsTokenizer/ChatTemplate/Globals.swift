import Foundation

/// The functions transformers' environment defines: jinja2's `range`, `dict`, `namespace`, plus transformers'
/// `raise_exception` and `strftime_now`.
enum Globals {
    /// The sandbox's bound on `range()`.
    static let maxRange = 100_000

    static func function(named name: String) -> Value? {
        let body: (Arguments) throws -> Value
        switch name {
        case "range": body = range
        case "dict": body = dict
        case "namespace": body = namespace
        case "raise_exception":
            body = { arguments in
                throw TemplateError.raised(message: try arguments.bind("raise_exception", [("message", nil)])[0].str)
            }
        case "strftime_now":
            body = { arguments in
                .string(strftime(try arguments.bind("strftime_now", [("format", nil)])[0].str, date: Date(), timeZone: .current))
            }
        default:
            return nil
        }
        return .callable(.builtin(name: name, body: body))
    }

    private static func range(_ arguments: Arguments) throws -> Value {
        guard arguments.keyword.isEmpty, (1...3).contains(arguments.positional.count) else {
            throw EvaluationError(message: "range expected 1 to 3 integer arguments")
        }
        let numbers = try arguments.positional.map { value -> Int in
            guard let integer = value.integer else {
                throw EvaluationError(message: "'\(value.typeName)' object cannot be interpreted as an integer")
            }
            return integer
        }
        let (start, stop) = numbers.count == 1 ? (0, numbers[0]) : (numbers[0], numbers[1])
        let step = numbers.count == 3 ? numbers[2] : 1
        guard step != 0 else { throw EvaluationError(message: "range() arg 3 must not be zero") }
        let count = max(0, Int(((Double(stop) - Double(start)) / Double(step)).rounded(.up)))
        guard count <= maxRange else {
            throw EvaluationError(message: "Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(maxRange)).")
        }
        return .list((0..<count).map { .int(start + $0 * step) })
    }

    /// `dict(mapping_or_pairs, **kwargs)`.
    private static func dict(_ arguments: Arguments) throws -> Value {
        guard arguments.positional.count <= 1 else { throw EvaluationError(message: "dict expected at most 1 argument") }
        var map = OrderedMap<Value>()
        if let source = arguments.positional.first {
            switch source {
            case let .dict(given): map = given
            default:
                for pair in try source.iterate() {
                    guard case let .list(items) = pair, items.count == 2, case let .string(key) = items[0] else {
                        throw EvaluationError(message: "dict() needs (string key, value) pairs")
                    }
                    map[key] = items[1]
                }
            }
        }
        for (key, value) in arguments.keyword.entries { map[key] = value }
        return .dict(map)
    }

    private static func namespace(_ arguments: Arguments) throws -> Value {
        guard case let .dict(map) = try dict(arguments) else { return .none }
        for key in map.keys { try checkNamespaceKey(key) }
        return .namespace(Namespace(map))
    }

    /// transformers' TemplateNamespace refuses underscore-prefixed attributes.
    static func checkNamespaceKey(_ name: String) throws {
        guard !name.hasPrefix("_") else {
            throw EvaluationError(message: "Chat templates cannot store underscore-prefixed attributes on a namespace, "
                + "but got \(PythonString.repr(name)). Please rename the attribute.")
        }
    }

    private static let months = ["January", "February", "March", "April", "May", "June", "July", "August",
                                 "September", "October", "November", "December"]
    private static let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    /// Python's `datetime.strftime` in the C locale, for the common directives.
    static func strftime(_ format: String, date: Date, timeZone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let year = parts.year!, month = parts.month!, day = parts.day!, hour = parts.hour!
        let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date)!
        func padded(_ value: Int, _ width: Int = 2) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        var result = ""
        var scalars = format.unicodeScalars.makeIterator()
        while let scalar = scalars.next() {
            guard scalar == "%", let directive = scalars.next() else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch directive {
            case "Y": result += String(year)
            case "y": result += padded(year % 100)
            case "m": result += padded(month)
            case "d": result += padded(day)
            case "e": result += (day < 10 ? " " : "") + String(day)
            case "H": result += padded(hour)
            case "I": result += padded(hour % 12 == 0 ? 12 : hour % 12)
            case "p": result += hour < 12 ? "AM" : "PM"
            case "M": result += padded(parts.minute!)
            case "S": result += padded(parts.second!)
            case "j": result += padded(dayOfYear, 3)
            case "B": result += months[month - 1]
            case "b", "h": result += String(months[month - 1].prefix(3))
            case "A": result += weekdays[parts.weekday! - 1]
            case "a": result += String(weekdays[parts.weekday! - 1].prefix(3))
            case "%": result += "%"
            default: result += "%" + String(directive)
            }
        }
        return result
    }
}
