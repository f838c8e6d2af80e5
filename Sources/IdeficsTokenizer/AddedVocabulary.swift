/// One entry of tokenizer.json's `added_tokens`.
struct AddedToken: Sendable {
    let id: Int
    let content: [UInt8]
    let special: Bool
    let normalized: Bool
    let lstrip: Bool
    let rstrip: Bool
    let singleWord: Bool
}

/// A piece of input after added-token extraction: either an added token already resolved to its id, or text
/// left for the pre-tokenizer and model.
enum InputPiece {
    case token(Int)
    case text(TextSegment)
}

/// Added tokens are cut out of the input before the model runs, as `tokenizers`' AddedVocabulary does: tokens with
/// `normalized: false` are matched on the raw input, the others on the normalized text (against their own
/// normalized form). Matching is leftmost-longest; lstrip/rstrip swallow neighbouring whitespace and
/// single_word rejects matches touching word characters.
struct AddedVocabulary: Sendable {
    let tokens: [Int: AddedToken]
    let idsByContent: [[UInt8]: Int]
    /// What `decode` and `idToToken` show for each id: a normalized token's normalized form.
    let displayForm: [Int: [UInt8]]
    /// Contents of tokens marked special: what `decode(skipSpecialTokens:)` drops.
    let specialContents: Set<[UInt8]>
    private let rawTrie: ByteTrie
    private let normalizedTrie: ByteTrie

    init(json node: JSONNode?, model: BPE, normalizer: Normalizer?) throws {
        var tokens: [Int: AddedToken] = [:]
        var idsByContent: [[UInt8]: Int] = [:]
        var displayForm: [Int: [UInt8]] = [:]
        var rawTrie = ByteTrie(), normalizedTrie = ByteTrie()
        // Ids are assigned as tokenizers does on load, ignoring the file's "id" fields (it only warns when they
        // differ): a known content keeps its id, a new one takes the next id after the model's vocabulary.
        var nextId = model.vocab.count
        for entry in try node?.array() ?? [] {
            let content = Array(try entry.required("content").string().utf8)
            guard !content.isEmpty else { continue }  // tokenizers ignores empty added tokens
            let id: Int
            if let known = idsByContent[content] ?? model.vocab[content] {
                id = known
            } else {
                id = nextId
                nextId += 1
            }
            let special = try entry.bool("special", default: false)
            let token = AddedToken(id: id, content: content, special: special,
                                   normalized: try entry.bool("normalized", default: !special),
                                   lstrip: try entry.bool("lstrip", default: false),
                                   rstrip: try entry.bool("rstrip", default: false),
                                   singleWord: try entry.bool("single_word", default: false))
            tokens[id] = token  // a repeated content replaces the earlier entry's flags
            idsByContent[content] = id
        }
        for token in tokens.values {
            let (id, content) = (token.id, token.content)
            if token.normalized {
                let pattern = normalizer?.normalize(content) ?? content
                displayForm[id] = pattern
                normalizedTrie.insert(pattern, id: id)
            } else {
                displayForm[id] = content
                rawTrie.insert(content, id: id)
            }
        }
        self.tokens = tokens
        self.idsByContent = idsByContent
        self.displayForm = displayForm
        self.specialContents = Set(tokens.values.filter(\.special).map(\.content))
        self.rawTrie = rawTrie
        self.normalizedTrie = normalizedTrie
    }

    /// The id of a token string: an added token's, else the model's.
    func id(of content: [UInt8], model: BPE) -> Int? {
        idsByContent[content] ?? model.vocab[content]
    }

    /// Splits the raw input on non-normalized tokens, normalizes the text between them, then splits that on
    /// normalized tokens. Empty text pieces are dropped.
    func extract(_ input: [UInt8], normalizer: Normalizer?) -> [InputPiece] {
        split(TextSegment(bytes: input, atStart: true), trie: rawTrie).flatMap { piece -> [InputPiece] in
            guard case var .text(segment) = piece else { return [piece] }
            if let normalizer { segment.bytes = normalizer.normalize(segment.bytes) }
            return split(segment, trie: normalizedTrie)
        }
    }

    private func split(_ segment: TextSegment, trie: ByteTrie) -> [InputPiece] {
        let text = segment.bytes
        var pieces: [InputPiece] = []
        func appendText(_ range: Range<Int>) {
            guard !range.isEmpty else { return }
            pieces.append(.text(TextSegment(bytes: Array(text[range]), atStart: segment.atStart && range.lowerBound == 0)))
        }
        var offset = 0
        for match in trie.leftmostLongestMatches(in: text) {
            guard let token = tokens[match.id] else { continue }
            var start = match.range.lowerBound, stop = match.range.upperBound
            if token.singleWord {
                let before = UTF8Text.scalar(endingAt: start, in: text)?.scalar
                let after = UTF8Text.scalar(startingAt: stop, in: text)
                if before.map(UTF8Text.isWordCharacter) == true || after.map(UTF8Text.isWordCharacter) == true {
                    continue
                }
            }
            if token.lstrip {
                while let (scalar, previous) = UTF8Text.scalar(endingAt: start, in: text), UTF8Text.isWhitespace(scalar) {
                    start = previous
                }
                start = max(start, offset)
            }
            if token.rstrip {
                while let scalar = UTF8Text.scalar(startingAt: stop, in: text), UTF8Text.isWhitespace(scalar) {
                    stop += UTF8.width(scalar)
                }
            }
            if offset < start { appendText(offset..<start) }
            pieces.append(.token(token.id))
            offset = stop
        }
        if offset < text.count { appendText(offset..<text.count) }
        return pieces
    }
}

/// A byte trie of added-token contents.
private struct ByteTrie: Sendable {
    private var children: [[UInt8: Int32]] = [[:]]
    private var ids: [Int?] = [nil]

    mutating func insert(_ bytes: [UInt8], id: Int) {
        var node = 0
        for byte in bytes {
            if let child = children[node][byte] {
                node = Int(child)
            } else {
                children.append([:])
                ids.append(nil)
                children[node][byte] = Int32(children.count - 1)
                node = children.count - 1
            }
        }
        ids[node] = id
    }

    /// Non-overlapping matches, each the longest one starting at the leftmost position where any match starts
    /// (the `MatchKind::LeftmostLongest` that tokenizers asks of its Aho-Corasick automaton).
    func leftmostLongestMatches(in text: [UInt8]) -> [(range: Range<Int>, id: Int)] {
        guard ids.count > 1 else { return [] }
        var matches: [(range: Range<Int>, id: Int)] = []
        var start = 0
        while start < text.count {
            var node = 0, index = start
            var longest: (end: Int, id: Int)?
            while index < text.count, let child = children[node][text[index]] {
                node = Int(child)
                index += 1
                if let id = ids[node] { longest = (index, id) }
            }
            if let longest {
                matches.append((start..<longest.end, longest.id))
                start = longest.end
            } else {
                start += 1
            }
        }
        return matches
    }
}
