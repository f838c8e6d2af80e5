import Foundation

/// One JSON object of a config file, read field by field with transformers' defaulting: an absent field takes the
/// config class's default; `null` is accepted only where transformers accepts it (`nullable` readers); a value of
/// the wrong type is an error naming the file and the dotted field path.
public struct ConfigObject: @unchecked Sendable {
    public let path: String
    /// The dotted path of this object inside the file ("" at the top level).
    public let prefix: String
    public let values: [String: Any]

    public init(path: String, prefix: String = "", values: [String: Any]) {
        self.path = path
        self.prefix = prefix
        self.values = values
    }

    /// The top-level object of `directory/file`, or nil when the file does not exist.
    public static func load(directory: URL, file: String) throws -> ConfigObject? {
        let url = directory.appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return ConfigObject(path: url.path, values: try Checkpoint.readJSONObject(url))
    }

    /// The top-level object of `directory/file`, which must exist (`user` names who needs it in the error).
    public static func required(directory: URL, file: String = "config.json", by user: String) throws -> ConfigObject {
        guard let object = try load(directory: directory, file: file) else {
            throw CheckpointError.missingFile(path: directory.appendingPathComponent(file).path, reason: "required by \(user)")
        }
        return object
    }

    public func contains(_ key: String) -> Bool { values[key] != nil }

    public func isNull(_ key: String) -> Bool { values[key] is NSNull }

    public func fieldName(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }

    public func error(_ key: String, _ reason: String) -> CheckpointError {
        .invalidConfig(path: path, reason: "field \(fieldName(key)) \(reason)")
    }

    /// The nested object at `key`; nil when absent or null.
    public func object(_ key: String) throws -> ConfigObject? {
        guard let value = values[key], !(value is NSNull) else { return nil }
        guard let nested = value as? [String: Any] else { throw error(key, "is not an object") }
        return ConfigObject(path: path, prefix: fieldName(key), values: nested)
    }

    public func int(_ key: String, default fallback: Int) throws -> Int {
        guard let value = try nullableInt(key, default: fallback) else { throw error(key, "is null") }
        return value
    }

    /// An integer field that may be `null` (nil).
    public func nullableInt(_ key: String, default fallback: Int?) throws -> Int? {
        guard let value = values[key] else { return fallback }
        if value is NSNull { return nil }
        guard let number = value as? NSNumber, !Self.isBool(number), let integer = Int(exactly: number.doubleValue) else {
            throw error(key, "is \(Self.describe(value)), not an integer")
        }
        return integer
    }

    /// The largest size or count a config may give (2^24): products of two such fit in an Int with room to spare,
    /// and no real checkpoint comes near it (idefics2-8b's largest is a 131072-position context).
    public static let sizeLimit = 1 << 24

    /// A positive integer (sizes, counts), at most `sizeLimit`.
    public func positiveInt(_ key: String, default fallback: Int) throws -> Int {
        try int(key, default: fallback, in: 1...Self.sizeLimit)
    }

    /// An integer within `range`.
    public func int(_ key: String, default fallback: Int, in range: ClosedRange<Int>) throws -> Int {
        let value = try int(key, default: fallback)
        guard range.contains(value) else { throw error(key, "is \(value); it must be in \(range.lowerBound)...\(range.upperBound)") }
        return value
    }

    /// A finite number > 0 (epsilons, rotary bases, scale factors): zero, negative or infinite ones give NaNs.
    public func positiveFloat(_ key: String, default fallback: Float) throws -> Float {
        let value = try float(key, default: fallback)
        guard value > 0, value.isFinite else { throw error(key, "is \(value); it must be a finite number > 0") }
        return value
    }

    public func double(_ key: String, default fallback: Double) throws -> Double {
        guard let value = values[key] else { return fallback }
        guard let number = value as? NSNumber, !Self.isBool(number) else {
            throw error(key, "is \(Self.describe(value)), not a number")
        }
        return number.doubleValue
    }

    public func float(_ key: String, default fallback: Float) throws -> Float {
        Float(try double(key, default: Double(fallback)))
    }

    public func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = values[key] else { return fallback }
        guard let number = value as? NSNumber, Self.isBool(number) else {
            throw error(key, "is \(Self.describe(value)), not true or false")
        }
        return number.boolValue
    }

    public func string(_ key: String, default fallback: String) throws -> String {
        guard let value = try nullableString(key, default: fallback) else { throw error(key, "is null") }
        return value
    }

    public func nullableString(_ key: String, default fallback: String?) throws -> String? {
        guard let value = values[key] else { return fallback }
        if value is NSNull { return nil }
        guard let string = value as? String else { throw error(key, "is \(Self.describe(value)), not a string") }
        return string
    }

    /// `key` must be one of `supported` (the absent value counts as `fallback`).
    public func choice(_ key: String, default fallback: String, supported: [String], what: String) throws -> String {
        let value = try string(key, default: fallback)
        guard supported.contains(value) else {
            throw error(key, "is \"\(value)\": \(what) is not supported (supported: \(supported.joined(separator: ", ")))")
        }
        return value
    }

    /// Whether a JSON value Foundation parsed as a number was `true`/`false` (NSNumber holds both).
    public static func isBool(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c" && "\(type(of: number))".contains("Boolean")
    }

    private static func describe(_ value: Any) -> String {
        switch value {
        case is NSNull: "null"
        case let string as String: "the string \"\(string.prefix(40))\""
        case let number as NSNumber: isBool(number) ? "\(number.boolValue)" : "\(number)"
        case is [Any]: "a list"
        case is [String: Any]: "an object"
        default: "\(value)"
        }
    }
}
