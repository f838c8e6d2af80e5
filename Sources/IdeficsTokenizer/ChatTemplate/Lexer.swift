import Foundation

/// A token of a template, after jinja2's whitespace control (`-`, `+`, trim_blocks, lstrip_blocks) has been applied
/// to the text between tags.
struct Token: Equatable {
    enum Kind: Equatable {
        case text(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(String)
        case end
    }

    var kind: Kind
    var line: Int
    var column: Int
}

/// jinja2's lexer for an environment with `trim_blocks=True, lstrip_blocks=True` and default delimiters.
/// Works on Unicode scalars, as Python strings do.
struct Lexer {
    private let source: [Unicode.Scalar]
    private let lineStarts: [Int]
    private var pos = 0
    private var tokens: [Token] = []
    /// jinja2's `line_starting`: whether the last thing consumed ended with a newline (start of template included).
    private var lineStarting = true

    static func tokenize(_ text: String) throws -> [Token] {
        var lexer = Lexer(text)
        try lexer.run()
        return lexer.tokens
    }

    private init(_ text: String) {
        // jinja2 normalizes newlines and drops one trailing newline (keep_trailing_newline=False).
        var scalars: [Unicode.Scalar] = []
        var iterator = text.unicodeScalars.makeIterator()
        var pending = iterator.next()
        while let scalar = pending {
            pending = iterator.next()
            if scalar == "\r" {
                scalars.append("\n")
                if pending == "\n" { pending = iterator.next() }
            } else {
                scalars.append(scalar)
            }
        }
        if scalars.last == "\n" { scalars.removeLast() }
        source = scalars
        lineStarts = [0] + scalars.indices.filter { scalars[$0] == "\n" }.map { $0 + 1 }
    }

    private func location(_ offset: Int) -> (line: Int, column: Int) {
        var low = 0, high = lineStarts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if lineStarts[mid] <= offset { low = mid } else { high = mid - 1 }
        }
        return (low + 1, offset - lineStarts[low] + 1)
    }

    private func error(_ message: String, at offset: Int) -> TemplateError {
        let (line, column) = location(offset)
        return .syntax(message: message, line: line, column: column)
    }

    private mutating func emit(_ kind: Token.Kind, at offset: Int) {
        let (line, column) = location(offset)
        tokens.append(Token(kind: kind, line: line, column: column))
    }

    private func at(_ offset: Int, _ text: String) -> Bool {
        var index = offset
        for scalar in text.unicodeScalars {
            guard index < source.count, source[index] == scalar else { return false }
            index += 1
        }
        return true
    }

    private func skipWhitespace(from offset: Int) -> Int {
        var index = offset
        while index < source.count, PythonString.isSpace(source[index]) { index += 1 }
        return index
    }

    private mutating func run() throws {
        while pos < source.count {
            guard let start = nextTagStart() else {
                emit(.text(String(String.UnicodeScalarView(source[pos...]))), at: pos)
                break
            }
            let opener = source[start + 1]
            let signOffset = start + 2
            let sign: Unicode.Scalar? = signOffset < source.count && (source[signOffset] == "-" || source[signOffset] == "+")
                ? source[signOffset] : nil
            let rawEnd = opener == "%" ? rawBlockEnd(afterSign: signOffset + (sign == nil ? 0 : 1)) : nil
            emitText(from: pos, to: start, sign: sign, isVariable: opener == "{")
            pos = signOffset + (sign == nil ? 0 : 1)
            lineStarting = false
            if let rawEnd {
                pos = rawEnd
                lineStarting = source[pos - 1] == "\n"
                try lexRawBody()
                continue
            }
            switch opener {
            case "#": try lexComment(start: start)
            case "{":
                emit(.variableBegin, at: start)
                try lexTag(start: start, isBlock: false)
            default:
                emit(.blockBegin, at: start)
                try lexTag(start: start, isBlock: true)
            }
        }
        emit(.end, at: source.count)
    }

    private func nextTagStart() -> Int? {
        var index = pos
        while index + 1 < source.count {
            if source[index] == "{", ["{", "%", "#"].contains(source[index + 1]) { return index }
            index += 1
        }
        return nil
    }

    /// Text before a tag: `-` strips all whitespace before it; otherwise, for block and comment tags not marked
    /// `+`, lstrip_blocks removes spaces between the start of the line and the tag.
    private mutating func emitText(from begin: Int, to end: Int, sign: Unicode.Scalar?, isVariable: Bool) {
        var stop = end
        if sign == "-" {
            while stop > begin, PythonString.isSpace(source[stop - 1]) { stop -= 1 }
        } else if sign != "+", !isVariable {
            var lineStart = stop
            while lineStart > begin, source[lineStart - 1] != "\n" { lineStart -= 1 }
            let onlySpace = lineStart < stop && source[lineStart..<stop].allSatisfy(PythonString.isSpace)
            if (lineStart > begin || lineStarting), onlySpace { stop = lineStart }
        }
        if stop > begin { emit(.text(String(String.UnicodeScalarView(source[begin..<stop]))), at: begin) }
    }

    /// The end of `{% raw %}` (or `{%- raw -%}` with following whitespace), if the block tag at hand is one.
    private func rawBlockEnd(afterSign offset: Int) -> Int? {
        var index = skipWhitespace(from: offset)
        guard at(index, "raw") else { return nil }
        index = skipWhitespace(from: index + 3)
        if at(index, "-%}") { return skipWhitespace(from: index + 3) }
        return at(index, "%}") ? index + 2 : nil
    }

    private mutating func lexRawBody() throws {
        var index = pos
        while index + 1 < source.count {
            if source[index] == "{", source[index + 1] == "%" {
                var probe = index + 2
                let sign: Unicode.Scalar? = probe < source.count && (source[probe] == "-" || source[probe] == "+")
                    ? source[probe] : nil
                if sign != nil { probe += 1 }
                probe = skipWhitespace(from: probe)
                if at(probe, "endraw") {
                    probe = skipWhitespace(from: probe + 6)
                    if let end = blockEnd(at: probe) {
                        emitText(from: pos, to: index, sign: sign, isVariable: false)
                        pos = end
                        lineStarting = source[end - 1] == "\n"
                        return
                    }
                }
            }
            index += 1
        }
        throw error("Missing end of raw directive", at: pos)
    }

    /// `+%}`, `-%}` plus following whitespace, or `%}` plus one newline (trim_blocks).
    private func blockEnd(at offset: Int) -> Int? {
        if at(offset, "+%}") { return offset + 3 }
        if at(offset, "-%}") { return skipWhitespace(from: offset + 3) }
        if at(offset, "%}") { return offset + 2 < source.count && source[offset + 2] == "\n" ? offset + 3 : offset + 2 }
        return nil
    }

    private mutating func lexComment(start: Int) throws {
        var index = pos
        while index + 1 < source.count {
            if source[index] == "#", source[index + 1] == "}" {
                let end: Int
                if index > pos, source[index - 1] == "-" {
                    end = skipWhitespace(from: index + 2)
                } else if index > pos, source[index - 1] == "+" {
                    end = index + 2
                } else {
                    end = index + 2 < source.count && source[index + 2] == "\n" ? index + 3 : index + 2
                }
                pos = end
                lineStarting = source[end - 1] == "\n"
                return
            }
            index += 1
        }
        throw error("Missing end of comment tag", at: start)
    }

    private static let operators = ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(",
                                     ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"]
    private static let closers: [String: String] = [")": "(", "]": "[", "}": "{"]

    private mutating func lexTag(start: Int, isBlock: Bool) throws {
        var balance: [String] = []
        while true {
            pos = skipWhitespace(from: pos)
            guard pos < source.count else {
                throw error("unexpected end of template, expected end of \(isBlock ? "statement block" : "print statement")", at: start)
            }
            if balance.isEmpty {
                if isBlock, let end = blockEnd(at: pos) {
                    emit(.blockEnd, at: pos)
                    pos = end
                    lineStarting = source[end - 1] == "\n"
                    return
                }
                if !isBlock, at(pos, "-}}") || at(pos, "}}") {
                    emit(.variableEnd, at: pos)
                    pos = at(pos, "-}}") ? skipWhitespace(from: pos + 3) : pos + 2
                    lineStarting = source[pos - 1] == "\n"
                    return
                }
            }
            let scalar = source[pos]
            if let number = lexNumber() {
                emit(number.kind, at: pos)
                pos = number.end
            } else if scalar == "_" || scalar.properties.isAlphabetic {
                var end = pos + 1
                while end < source.count, source[end] == "_" || source[end].properties.isAlphabetic
                    || source[end].properties.numericType == .decimal { end += 1 }
                emit(.name(String(String.UnicodeScalarView(source[pos..<end]))), at: pos)
                pos = end
            } else if scalar == "'" || scalar == "\"" {
                try lexString(quote: scalar)
            } else if let op = Self.operators.first(where: { at(pos, $0) }) {
                if ["(", "[", "{"].contains(op) {
                    balance.append(op)
                } else if let opener = Self.closers[op] {
                    guard balance.last == opener else { throw error("unexpected '\(op)'", at: pos) }
                    balance.removeLast()
                }
                emit(.op(op), at: pos)
                pos += op.unicodeScalars.count
            } else {
                throw error("unexpected char '\(scalar)'", at: pos)
            }
        }
    }

    private func isDigit(_ offset: Int) -> Bool {
        offset < source.count && ("0"..."9").contains(source[offset])
    }

    /// Decimal digits with single underscores between them, as jinja2's integer and float patterns allow.
    private func digits(from offset: Int) -> Int? {
        guard isDigit(offset) else { return nil }
        var index = offset + 1
        while true {
            if isDigit(index) { index += 1 } else if source.indices.contains(index), source[index] == "_", isDigit(index + 1) {
                index += 2
            } else { return index }
        }
    }

    /// Integers (decimal, 0b, 0o, 0x) and floats (`1.5`, `1e3`, `1.5e-3`), not after a `.` (so `a.0.1` is items).
    private func lexNumber() -> (kind: Token.Kind, end: Int)? {
        guard isDigit(pos) else { return nil }
        let intEnd = digits(from: pos)!
        let afterDot = pos > 0 && source[pos - 1] == "."
        var end = intEnd
        var isFloat = false
        if !afterDot, end < source.count, source[end] == ".", let fraction = digits(from: end + 1) {
            end = fraction
            isFloat = true
        }
        if !afterDot, end < source.count, source[end] == "e" || source[end] == "E" {
            var exponent = end + 1
            if exponent < source.count, source[exponent] == "+" || source[exponent] == "-" { exponent += 1 }
            if let exponentEnd = digits(from: exponent) {
                end = exponentEnd
                isFloat = true
            }
        }
        let text = String(String.UnicodeScalarView(source[pos..<end])).replacingOccurrences(of: "_", with: "")
        if isFloat { return Double(text).map { (.float($0), end) } }
        if source[pos] == "0", intEnd > pos, let (radix, prefixEnd) = radixPrefix() {
            var digitsEnd = prefixEnd
            while digitsEnd < source.count, source[digitsEnd] == "_" || source[digitsEnd].properties.isASCIIHexDigit {
                digitsEnd += 1
            }
            let body = String(String.UnicodeScalarView(source[prefixEnd..<digitsEnd])).replacingOccurrences(of: "_", with: "")
            if let value = Int(body, radix: radix) { return (.integer(value), digitsEnd) }
        }
        return Int(text).map { (.integer($0), end) }
    }

    private func radixPrefix() -> (Int, Int)? {
        guard pos + 1 < source.count else { return nil }
        switch source[pos + 1] {
        case "b", "B": return (2, pos + 2)
        case "o", "O": return (8, pos + 2)
        case "x", "X": return (16, pos + 2)
        default: return nil
        }
    }

    /// A quoted string with Python's escapes (jinja2 decodes string literals with `unicode-escape`).
    private mutating func lexString(quote: Unicode.Scalar) throws {
        let start = pos
        var result = String.UnicodeScalarView()
        var index = pos + 1
        while true {
            guard index < source.count else { throw error("unexpected end of string", at: start) }
            let scalar = source[index]
            if scalar == quote { break }
            guard scalar == "\\", index + 1 < source.count else {
                result.append(scalar)
                index += 1
                continue
            }
            let next = source[index + 1]
            index += 2
            switch next {
            case "\n": break
            case "\\", "'", "\"": result.append(next)
            case "a": result.append("\u{07}")
            case "b": result.append("\u{08}")
            case "f": result.append("\u{0C}")
            case "n": result.append("\n")
            case "r": result.append("\r")
            case "t": result.append("\t")
            case "v": result.append("\u{0B}")
            case "0"..."7":
                var value = next.value - 48
                var count = 1
                while count < 3, index < source.count, ("0"..."7").contains(source[index]) {
                    value = value * 8 + source[index].value - 48
                    index += 1
                    count += 1
                }
                result.append(Unicode.Scalar(value)!)
            case "x", "u", "U":
                let width = next == "x" ? 2 : next == "u" ? 4 : 8
                let hex = index + width <= source.count ? String(String.UnicodeScalarView(source[index..<index + width])) : ""
                guard hex.unicodeScalars.count == width, hex.unicodeScalars.allSatisfy(\.properties.isASCIIHexDigit),
                      let value = UInt32(hex, radix: 16), let decoded = Unicode.Scalar(value)
                else { throw error("invalid \\\(next) escape in string", at: index - 2) }
                result.append(decoded)
                index += width
            default:
                result.append("\\")
                result.append(next)
            }
        }
        emit(.string(String(result)), at: start)
        pos = index + 1
    }
}
