import IdeficsGeneration
import IdeficsImages
import IdeficsModels
import IdeficsTokenizer

/// One item of a prompt given as a list, the way transformers' Idefics processors take it: text or an image.
public enum PromptItem: Sendable, Equatable {
    case text(String)
    case image(RGBImage)

    /// A raw prompt's text pieces between `<image>` placeholders, which take `images` in order (adjacent
    /// placeholders are consecutive images).
    public static func split(_ prompt: String, images: [RGBImage]) throws -> [PromptItem] {
        var next = images.makeIterator()
        return try IdeficsPrompt.items(splitting: prompt, imageCount: images.count).map { item in
            if case .text(let text) = item { return .text(text) }
            return .image(next.next()!)
        }
    }
}

extension Pipeline {
    /// Token ids and image data of a prompt given as items. Idefics v1 builds it as `IdeficsProcessor` does
    /// (`addEndOfUtterance` nil: transformers 5.23's default for these tokenizers, off); Idefics2 joins the items,
    /// an `<image>` placeholder for each image, as its processor takes text and images.
    public func prepare(items: [PromptItem], addEndOfUtterance: Bool? = nil,
                        options: Idefics2ImageProcessorOverrides = .init()) throws -> PreparedPrompt {
        let images = items.compactMap { item -> RGBImage? in
            if case .image(let image) = item { return image }
            return nil
        }
        guard ideficsV1 != nil else {
            let text = items.map { item -> String in
                if case .text(let text) = item { return text }
                return Idefics2Prompt.imageToken
            }.joined()
            return try prepare(prompt: text, images: images, options: options)
        }
        let promptItems = items.map { item -> IdeficsPrompt.Item in
            if case .text(let text) = item { return .text(text) }
            return .image
        }
        return try prepareV1(items: promptItems, imageStates: images.map { try imageFeatures($0, options: options) },
                             addEndOfUtterance: addEndOfUtterance)
    }

    func prepareV1(items: [IdeficsPrompt.Item], imageStates: [[Float]], addEndOfUtterance: Bool?) throws -> PreparedPrompt {
        let text = IdeficsPrompt.text(items, addEndOfUtterance: addEndOfUtterance ?? false,
                                      bosToken: tokenizer.bosTokenId.flatMap(tokenizer.idToToken) ?? "<s>")
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        try checkEmbedded(ids)
        return PreparedPrompt(ids: ids, imageStates: imageStates)
    }

    /// A fresh Idefics v1 decoding state whose cross-attention reads `imageStates` (one `imageFeatures` per image).
    public func makeV1Session(imageStates: [[Float]]) -> IdeficsSession {
        guard let ideficsV1 else { preconditionFailure("makeV1Session needs an Idefics v1 pipeline: use makeSession") }
        return IdeficsSession(model: ideficsV1, pool: pool, imageStates: imageStates,
                              imageTokenId: imageTokenId!, eosTokenId: tokenizer.eosTokenId)
    }
}
