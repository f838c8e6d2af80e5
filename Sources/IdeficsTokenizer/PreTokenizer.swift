/// A stretch of normalized text still to be tokenized by the model. `atStart` records whether it begins at
/// offset 0 of the original input, which Metaspace's `prepend_scheme: "first"` depends on.
struct TextSegment {
    var bytes: [UInt8]
    var atStart: Bool
}

/// The `pre_tokenizer` of tokenizer.json: cuts normalized text into the words the model encodes separately.
enum PreTokenizer: Sendable {
    case sequence([PreTokenizer])
    case metaspace(replacement: [UInt8], prepend: PrependScheme, split: Bool)
    case split(pattern: [UInt8], behavior: SplitBehavior, invert: Bool)

    enum PrependScheme: String, Sendable { case first, always, never }

    enum SplitBehavior: String, Sendable {
        case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
        case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
    }

    init(json node: JSONNode) throws {
        switch try node.typeTag() {
        case "Sequence":
            self = .sequence(try node.required("pretokenizers").array().map(PreTokenizer.init(json:)))
        case "Metaspace":
            let replacement = try node.required("replacement").scalar()
            self = .metaspace(replacement: Array(String(replacement).utf8), prepend: try Self.prependScheme(node),
                              split: try node.bool("split", default: true))
        case "Split":
            let behaviorNode = try node.required("behavior")
            guard let behavior = SplitBehavior(rawValue: try behaviorNode.string()) else {
                throw behaviorNode.invalid("unknown split behavior")
            }
            self = .split(pattern: try stringPattern(node.required("pattern")), behavior: behavior,
                          invert: try node.bool("invert", default: false))
        case let other:
            throw node.unsupported("pre_tokenizer type \"\(other)\"")
        }
    }

    /// Metaspace's `prepend_scheme`, shared by the pre-tokenizer and the decoder of that name.
    static func prependScheme(_ node: JSONNode) throws -> PrependScheme {
        if let field = try node.optional("prepend_scheme") {
            guard let scheme = PrependScheme(rawValue: try field.string()) else {
                throw field.invalid("expected \"first\", \"always\" or \"never\"")
            }
            return scheme
        }
        // Files written before prepend_scheme existed say add_prefix_space instead.
        return try node.bool("add_prefix_space", default: true) ? .always : .never
    }

    func preTokenize(_ segments: [TextSegment]) -> [TextSegment] {
        switch self {
        case let .sequence(preTokenizers):
            return preTokenizers.reduce(segments) { $1.preTokenize($0) }
        case let .metaspace(replacement, prepend, split):
            return segments.flatMap { segment -> [TextSegment] in
                var bytes = UTF8Text.replacing([0x20], with: replacement, in: segment.bytes)
                let startsWithReplacement = bytes.starts(with: replacement)
                switch prepend {
                case .always where !startsWithReplacement, .first where !startsWithReplacement && segment.atStart:
                    bytes = replacement + bytes
                default:
                    break
                }
                let segment = TextSegment(bytes: bytes, atStart: segment.atStart)
                return split ? Self.split(segment, on: replacement, behavior: .mergedWithNext, invert: false)
                             : [segment]
            }
        case let .split(pattern, behavior, invert):
            return segments.flatMap { Self.split($0, on: pattern, behavior: behavior, invert: invert) }
        }
    }

    /// `NormalizedString::split`: partitions the text into matches and gaps, regroups them by `behavior`,
    /// and drops empty pieces (as `PreTokenizedString::split` does).
    private static func split(_ segment: TextSegment, on pattern: [UInt8], behavior: SplitBehavior,
                              invert: Bool) -> [TextSegment] {
        let text = segment.bytes
        var parts: [(range: Range<Int>, isMatch: Bool)] = []
        var cursor = 0
        for match in UTF8Text.occurrences(of: pattern, in: text[...]) {
            if cursor < match.lowerBound { parts.append((cursor..<match.lowerBound, invert)) }
            parts.append((match, !invert))
            cursor = match.upperBound
        }
        if cursor < text.count { parts.append((cursor..<text.count, invert)) }

        var pieces: [Range<Int>] = []
        switch behavior {
        case .removed:
            pieces = parts.filter { !$0.isMatch }.map(\.range)
        case .isolated:
            pieces = parts.map(\.range)
        case .contiguous:
            var previous = false
            for part in parts {
                if part.isMatch == previous, let last = pieces.last {
                    pieces[pieces.count - 1] = last.lowerBound..<part.range.upperBound
                } else {
                    pieces.append(part.range)
                }
                previous = part.isMatch
            }
        case .mergedWithPrevious:
            var previous = false
            for part in parts {
                if part.isMatch && !previous, let last = pieces.last {
                    pieces[pieces.count - 1] = last.lowerBound..<part.range.upperBound
                } else {
                    pieces.append(part.range)
                }
                previous = part.isMatch
            }
        case .mergedWithNext:
            var previous = false
            for part in parts.reversed() {
                if part.isMatch && !previous, let last = pieces.last {
                    pieces[pieces.count - 1] = part.range.lowerBound..<last.upperBound
                } else {
                    pieces.append(part.range)
                }
                previous = part.isMatch
            }
            pieces.reverse()
        }
        return pieces.filter { !$0.isEmpty }.map {
            TextSegment(bytes: Array(text[$0]), atStart: segment.atStart && $0.lowerBound == 0)
        }
    }
}
