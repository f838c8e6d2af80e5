import Foundation
import IdeficsCheckpoint

/// A JSON object of a request read field by field: an absent or null field is nil, a value of the wrong type is a
/// validation error naming the field (its dotted path) and what was expected.
struct JSONFields {
    let values: [String: Any]
    let path: String

    init(_ values: [String: Any], path: String = "") {
        self.values = values
        self.path = path
    }

    /// The request body as an object; malformed JSON is named as such.
    static func body(_ data: Data) throws(ServerError) -> JSONFields {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw .validation("the request body is not valid JSON: \((error as NSError).userInfo["NSDebugDescription"] ?? error)")
        }
        guard let dictionary = object as? [String: Any] else { throw .validation("the request body is not a JSON object") }
        return JSONFields(dictionary)
    }

    func name(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    private func value(_ key: String) -> Any? {
        guard let value = values[key], !(value is NSNull) else { return nil }
        return value
    }

    private func fail(_ key: String, _ expected: String) -> ServerError { .validation("`\(name(key))` must be \(expected)") }

    private func number(_ key: String) throws(ServerError) -> NSNumber? {
        guard let value = value(key) else { return nil }
        guard let number = value as? NSNumber, !ConfigObject.isBool(number) else { throw fail(key, "a number") }
        return number
    }

    func double(_ key: String) throws(ServerError) -> Double? {
        guard let number = try number(key) else { return nil }
        guard number.doubleValue.isFinite else { throw fail(key, "a finite number") }
        return number.doubleValue
    }

    func int(_ key: String) throws(ServerError) -> Int? {
        guard let number = try number(key) else { return nil }
        guard let integer = Int(exactly: number.doubleValue), abs(integer) < 1 << 53 else { throw fail(key, "an integer") }
        return integer
    }

    /// A JSON integer read exactly: NSNumber keeps one above Int64.max as an unsigned value ("Q"), the others as
    /// signed ones. Never through a Double, which rounds past 2^53: a seed of 2^53 + 1 became 2^53, so a replayed
    /// sampling seed drew other tokens. A number written with a fraction or an exponent is taken only where a Double
    /// is exact.
    func uint64(_ key: String) throws(ServerError) -> UInt64? {
        guard let number = try number(key) else { return nil }
        switch String(cString: number.objCType) {
        case "Q": return number.uint64Value
        case "d", "f":
            guard let integer = UInt64(exactly: number.doubleValue), integer < 1 << 53 else {
                throw fail(key, "an integer in 0...2^64-1")
            }
            return integer
        default:
            guard number.int64Value >= 0 else { throw fail(key, "an integer in 0...2^64-1") }
            return UInt64(number.int64Value)
        }
    }

    func bool(_ key: String) throws(ServerError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard let number = value as? NSNumber, ConfigObject.isBool(number) else { throw fail(key, "true or false") }
        return number.boolValue
    }

    func string(_ key: String) throws(ServerError) -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value as? String else { throw fail(key, "a string") }
        return string
    }

    /// A string or a list of strings (OpenAI's and TGI's `stop`).
    func strings(_ key: String) throws(ServerError) -> [String]? {
        guard let value = value(key) else { return nil }
        if let string = value as? String { return [string] }
        guard let list = value as? [Any], let strings = list as? [String] else { throw fail(key, "a string or a list of strings") }
        return strings
    }

    func object(_ key: String) throws(ServerError) -> JSONFields? {
        guard let value = value(key) else { return nil }
        guard let object = value as? [String: Any] else { throw fail(key, "an object") }
        return JSONFields(object, path: name(key))
    }

    func objects(_ key: String) throws(ServerError) -> [JSONFields]? {
        guard let value = value(key) else { return nil }
        guard let list = value as? [Any] else { throw fail(key, "a list") }
        return try list.enumerated().map { (index, item) throws(ServerError) in
            guard let object = item as? [String: Any] else { throw fail("\(key)[\(index)]", "an object") }
            return JSONFields(object, path: name("\(key)[\(index)]"))
        }
    }

    func isPresent(_ key: String) -> Bool { value(key) != nil }
}
