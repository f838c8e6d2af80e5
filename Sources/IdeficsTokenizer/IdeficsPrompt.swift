/// Idefics v1's prompt building, as transformers' `IdeficsProcessor` does it: a list of items (text and images) becomes
/// `<s>` followed by each text item stripped of spaces at both ends, each image as
/// `<fake_token_around_image><image><fake_token_around_image>` (consecutive images share the fake token between
/// them), and, when asked, `<end_of_utterance>` between two consecutive text items. Then which image each token sees.
public enum IdeficsPrompt {
    public static let endOfUtterance = "<end_of_utterance>"

    /// A prompt item: text, or the place of the next image.
    public enum Item: Sendable, Equatable {
        case text(String)
        case image
    }

    /// A raw prompt as items: the text pieces between `<image>` placeholders (empty pieces dropped, so adjacent
    /// placeholders are consecutive images), which must number `imageCount`.
    public static func items(splitting prompt: String, imageCount: Int) throws -> [Item] {
        let pieces = prompt.components(separatedBy: Idefics2Prompt.imageToken)
        guard pieces.count - 1 == imageCount else {
            throw Idefics2Prompt.CountMismatch(placeholders: pieces.count - 1, images: imageCount)
        }
        var items = [Item]()
        for (index, piece) in pieces.enumerated() {
            if index > 0 { items.append(.image) }
            if !piece.isEmpty { items.append(.text(piece)) }
        }
        return items
    }

    /// The prompt text (tokenized afterwards without special tokens added: `<s>` is part of it).
    public static func text(_ items: [Item], addEndOfUtterance: Bool, bosToken: String = "<s>") -> String {
        let fake = Idefics2Prompt.fakeToken, image = Idefics2Prompt.imageToken
        var text = bosToken
        var lastWasImage = false
        for (index, item) in items.enumerated() {
            switch item {
            case .image:
                text += lastWasImage ? image + fake : fake + image + fake
                lastWasImage = true
            case .text(let value):
                if addEndOfUtterance && index > 0 && !lastWasImage { text += endOfUtterance }
                text += stripSpaces(value)
                lastWasImage = false
            }
        }
        return text
    }

    /// Python's `str.strip(" ")`: spaces only, not newlines or tabs.
    static func stripSpaces(_ s: String) -> String {
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " })!
        return String(scalars[first...last])
    }

    /// Whether the processor takes a text item for an image URL (`is_url`: no space, and `urlparse` finds a scheme
    /// and a network location, as in `https://host/...`; `file:///...` and `data:` URIs have none and stay text).
    public static func isURL(_ item: String) -> Bool { url(item) != nil }

    /// The URL an image item names, as `urlparse` reads it: leading C0 controls dropped, tabs and newlines removed.
    public static func url(_ item: String) -> String? {
        let spaced = stripSpaces(item)
        guard !spaced.contains(" ") else { return nil }
        let s = String(spaced.unicodeScalars.drop { $0.value <= 0x20 }.filter { !"\t\r\n".unicodeScalars.contains($0) })
        guard let colon = s.firstIndex(of: ":") else { return nil }
        let scheme = s[..<colon]
        guard let head = scheme.first, head.isASCII, head.isLetter,
              scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) else { return nil }
        let rest = s[s.index(after: colon)...]
        guard rest.hasPrefix("//") else { return nil }
        let netloc = rest.dropFirst(2).prefix { !"/?#".contains($0) }
        return netloc.isEmpty ? nil : s
    }

    /// The image each token sees (`image_attention_mask_for_packed_input_ids`): the most recent `<image>` token's
    /// image, nil before the first one, and nil after a `</s>` (the `</s>` itself still sees it) until the next
    /// `<image>`.
    public static func attendedImages(_ ids: [Int], imageTokenId: Int, eosTokenId: Int?) -> [Int?] {
        var count = -1
        var seenEnd = false
        return ids.map { id in
            if id == imageTokenId {
                count += 1
                seenEnd = false
            }
            defer { if id == eosTokenId { seenEnd = true } }
            return seenEnd || count < 0 ? nil : count
        }
    }
}
