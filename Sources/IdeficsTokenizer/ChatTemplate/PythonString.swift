/// Python `str` operations on Unicode scalars (Python indexes strings by code point).
enum PythonString {
    /// `str.isspace()`, which is also what `\s` matches in Python's `re` and what `strip()`/`split()` remove.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `str.strip/lstrip/rstrip(chars)`; nil strips whitespace.
    static func strip(_ text: String, _ chars: String?, leading: Bool, trailing: Bool) -> String {
        let scalars = Array(text.unicodeScalars)
        let set = chars.map { Set($0.unicodeScalars) }
        let drop = { (scalar: Unicode.Scalar) in set?.contains(scalar) ?? isSpace(scalar) }
        var start = 0, end = scalars.count
        if leading { while start < end, drop(scalars[start]) { start += 1 } }
        if trailing { while end > start, drop(scalars[end - 1]) { end -= 1 } }
        return String(String.UnicodeScalarView(scalars[start..<end]))
    }

    /// `str.split(sep, maxsplit)`; nil splits on runs of whitespace and drops empty pieces.
    static func split(_ text: String, _ separator: String?, maxSplit: Int) throws -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [String] = []
        guard let separator else {
            var index = 0
            while index < scalars.count {
                while index < scalars.count, isSpace(scalars[index]) { index += 1 }
                guard index < scalars.count else { break }
                if maxSplit >= 0, pieces.count == maxSplit {
                    var end = scalars.count
                    while end > index, isSpace(scalars[end - 1]) { end -= 1 }
                    pieces.append(String(String.UnicodeScalarView(scalars[index..<end])))
                    break
                }
                let start = index
                while index < scalars.count, !isSpace(scalars[index]) { index += 1 }
                pieces.append(String(String.UnicodeScalarView(scalars[start..<index])))
            }
            return pieces
        }
        let needle = Array(separator.unicodeScalars)
        guard !needle.isEmpty else { throw EvaluationError(message: "empty separator") }
        var start = 0, index = 0
        while index + needle.count <= scalars.count, maxSplit < 0 || pieces.count < maxSplit {
            if Array(scalars[index..<index + needle.count]) == needle {
                pieces.append(String(String.UnicodeScalarView(scalars[start..<index])))
                index += needle.count
                start = index
            } else {
                index += 1
            }
        }
        pieces.append(String(String.UnicodeScalarView(scalars[start...])))
        return pieces
    }

    /// `str.find(sub)`: the code-point offset of the first occurrence at or after `start`.
    static func find(_ text: String, _ needle: String, from start: Int = 0) -> Int? {
        let scalars = Array(text.unicodeScalars), pattern = Array(needle.unicodeScalars)
        guard start >= 0, start + pattern.count <= scalars.count else { return nil }
        for index in start...(scalars.count - pattern.count) where scalars[index..<index + pattern.count].elementsEqual(pattern) {
            return index
        }
        return nil
    }

    /// `str.replace(old, new, count)`, including Python's behavior for an empty `old`.
    static func replace(_ text: String, _ old: String, _ new: String, count: Int) -> String {
        guard !old.isEmpty else {
            var pieces = text.unicodeScalars.map(String.init)
            var result = ""
            var inserted = 0
            pieces.append("")
            for piece in pieces {
                if count < 0 || inserted < count {
                    result += new
                    inserted += 1
                }
                result += piece
            }
            return result
        }
        let parts = (try? split(text, old, maxSplit: count)) ?? [text]
        return parts.joined(separator: new)
    }

    static func lower(_ text: String) -> String { text.lowercased() }
    static func upper(_ text: String) -> String { text.uppercased() }

    /// `str.capitalize()`: first character title-cased, the rest lower-cased.
    static func capitalize(_ text: String) -> String {
        guard let first = text.unicodeScalars.first else { return text }
        return first.properties.titlecaseMapping + String(text.unicodeScalars.dropFirst()).lowercased()
    }

    /// `str.title()`: a cased character after an uncased one starts a word.
    static func title(_ text: String) -> String {
        var result = ""
        var previousCased = false
        for scalar in text.unicodeScalars {
            result += previousCased ? scalar.properties.lowercaseMapping : scalar.properties.titlecaseMapping
            previousCased = scalar.properties.isCased
        }
        return result
    }

    /// `repr(str)`: single quotes unless the text has a single quote and no double quote.
    static func repr(_ text: String) -> String {
        let quote: Unicode.Scalar = text.contains("'") && !text.contains("\"") ? "\"" : "'"
        var result = String(quote)
        for scalar in text.unicodeScalars {
            switch scalar {
            case quote, "\\": result += "\\" + String(scalar)
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if isPrintable(scalar) {
                    result.unicodeScalars.append(scalar)
                } else {
                    let hex = String(scalar.value, radix: 16)
                    let width = scalar.value < 0x100 ? 2 : scalar.value < 0x10000 ? 4 : 8
                    let prefix = width == 2 ? "\\x" : width == 4 ? "\\u" : "\\U"
                    result += prefix + String(repeating: "0", count: width - hex.count) + hex
                }
            }
        }
        return result + String(quote)
    }

    /// `str.isprintable()` for one character: not a control, format, surrogate, private, unassigned or separator
    /// character, the ASCII space excepted.
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
             .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// Python slice bounds (`PySlice_AdjustIndices`) over a sequence of `count` elements.
    static func sliceIndices(count: Int, start: Int?, stop: Int?, step: Int?) throws -> [Int] {
        let step = step ?? 1
        guard step != 0 else { throw EvaluationError(message: "slice step cannot be zero") }
        func adjust(_ value: Int?, _ fallback: Int, lower: Int, upper: Int) -> Int {
            guard var value else { return fallback }
            if value < 0 { value += count }
            return min(max(value, lower), upper)
        }
        if step > 0 {
            let from = adjust(start, 0, lower: 0, upper: count)
            let to = adjust(stop, count, lower: 0, upper: count)
            return from < to ? Array(stride(from: from, to: to, by: step)) : []
        }
        let from = adjust(start, count - 1, lower: -1, upper: count - 1)
        let to = adjust(stop, -1, lower: -1, upper: count - 1)
        return from > to ? Array(stride(from: from, to: to, by: step)) : []
    }
}
