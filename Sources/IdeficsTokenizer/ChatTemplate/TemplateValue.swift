/// A string-keyed map that keeps insertion order, like a Python dict: templates iterate it and `tojson` prints it
/// in that order. Equality ignores order, as Python's does.
public struct OrderedMap<Element> {
    public private(set) var keys: [String] = []
    private var storage: [String: Element] = [:]

    public init() {}

    public init(_ entries: [(String, Element)]) {
        for (key, value) in entries { self[key] = value }
    }

    public subscript(key: String) -> Element? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }
    public var values: [Element] { keys.map { storage[$0]! } }
    public var entries: [(key: String, value: Element)] { keys.map { ($0, storage[$0]!) } }

    func mapValues<T>(_ transform: (Element) throws -> T) rethrows -> OrderedMap<T> {
        var result = OrderedMap<T>()
        for key in keys { result[key] = try transform(storage[key]!) }
        return result
    }
}

extension OrderedMap: Sendable where Element: Sendable {}

extension OrderedMap: Equatable where Element: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.storage == rhs.storage }
}

extension OrderedMap: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, Element)...) { self.init(elements) }
}

/// JSON-like data handed to a template: message fields, tools, documents, extra variables.
public enum TemplateValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([TemplateValue])
    case object(OrderedMap<TemplateValue>)
}

extension TemplateValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: TemplateValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, TemplateValue)...) { self = .object(OrderedMap(elements)) }
}
