/// Byte-level text helpers. The whole pipeline works on UTF-8 bytes rather than `String` because Swift's
/// `String` equality, hashing and searching follow canonical equivalence (and grapheme clusters), while
/// `tokenizers` compares raw bytes: "e\u{301}" and "é" must stay different tokens.
enum UTF8Text {
    /// Decodes the scalar starting at `index` of valid UTF-8; returns its value and byte length.
    @inline(__always)
    static func scalar(in bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> (value: UInt32, length: Int) {
        let lead = UInt32(bytes[index])
        if lead < 0x80 { return (lead, 1) }
        if lead < 0xE0 { return ((lead & 0x1F) << 6 | UInt32(bytes[index + 1] & 0x3F), 2) }
        if lead < 0xF0 {
            return ((lead & 0x0F) << 12 | UInt32(bytes[index + 1] & 0x3F) << 6 | UInt32(bytes[index + 2] & 0x3F), 3)
        }
        return ((lead & 0x07) << 18 | UInt32(bytes[index + 1] & 0x3F) << 12
                    | UInt32(bytes[index + 2] & 0x3F) << 6 | UInt32(bytes[index + 3] & 0x3F), 4)
    }

    /// The scalar that starts at `index` of valid UTF-8 text.
    static func scalar(startingAt index: Int, in text: [UInt8]) -> Unicode.Scalar? {
        guard index < text.count else { return nil }
        let value = text.withUnsafeBufferPointer { scalar(in: $0, at: index).value }
        return Unicode.Scalar(value)
    }

    /// The scalar that ends just before `index` of valid UTF-8 text, with its start.
    static func scalar(endingAt index: Int, in text: [UInt8]) -> (scalar: Unicode.Scalar, start: Int)? {
        guard index > 0 else { return nil }
        var start = index - 1
        while start > 0 && text[start] & 0xC0 == 0x80 { start -= 1 }
        return self.scalar(startingAt: start, in: text).map { ($0, start) }
    }

    static func scalars(_ bytes: ArraySlice<UInt8>) -> String.UnicodeScalarView {
        String(decoding: bytes, as: UTF8.self).unicodeScalars
    }

    static func bytes<S: Sequence>(_ scalars: S) -> [UInt8] where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return Array(String(view).utf8)
    }

    /// Rust's `\s` (Unicode White_Space), as used by added tokens' lstrip/rstrip.
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool { scalar.properties.isWhitespace }

    /// Rust regex's Unicode `\w`: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// Non-overlapping leftmost occurrences of a non-empty `pattern`, as `str::match_indices` finds them.
    static func occurrences(of pattern: [UInt8], in text: ArraySlice<UInt8>) -> [Range<Int>] {
        guard !pattern.isEmpty, text.count >= pattern.count else { return [] }
        var found: [Range<Int>] = []
        let first = pattern[0]
        var index = text.startIndex
        let last = text.endIndex - pattern.count
        while index <= last {
            if text[index] == first && text[index..<index + pattern.count].elementsEqual(pattern) {
                found.append(index..<index + pattern.count)
                index += pattern.count
            } else {
                index += 1
            }
        }
        return found
    }

    static func replacing(_ pattern: [UInt8], with content: [UInt8], in text: [UInt8]) -> [UInt8] {
        let matches = occurrences(of: pattern, in: text[...])
        guard !matches.isEmpty else { return text }
        var result: [UInt8] = []
        result.reserveCapacity(text.count + matches.count * max(0, content.count - pattern.count))
        var cursor = 0
        for match in matches {
            result.append(contentsOf: text[cursor..<match.lowerBound])
            result.append(contentsOf: content)
            cursor = match.upperBound
        }
        result.append(contentsOf: text[cursor...])
        return result
    }
}
