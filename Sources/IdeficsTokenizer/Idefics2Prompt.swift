/// Idefics2's prompt expansion, as the original processor (transformers 4.40-4.4x) does it: every `<image>` becomes
/// `<fake_token_around_image>` + N `<image>` + `<fake_token_around_image>` (that block five times for a split image:
/// four crops and the whole), and doubled fake tokens collapse, so adjacent images share one.
/// transformers 5 also inserts a space after each image block; the models were not trained with it.
public enum Idefics2Prompt {
    public static let imageToken = "<image>"
    public static let fakeToken = "<fake_token_around_image>"

    /// The chat template transformers 4.40's `Idefics2Processor` used when a checkpoint had none (its
    /// `default_chat_template`): what the published idefics2-8b folders, which ship no template, were used with.
    public static let defaultChatTemplate = "{% for message in messages %}{{message['role'].capitalize()}}"
        + "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
        + "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
        + "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
        + "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
    public static let defaultChatTemplateOrigin = "the Idefics2 default template (transformers 4.40's Idefics2Processor)"

    public struct CountMismatch: Error, Equatable, CustomStringConvertible {
        public let placeholders: Int
        public let images: Int
        public var description: String {
            "the prompt has \(placeholders) <image> placeholder\(placeholders == 1 ? "" : "s") but "
                + "\(images) image\(images == 1 ? " was" : "s were") given"
        }
    }

    /// Number of `<image>` placeholders in a prompt before expansion.
    public static func placeholderCount(_ text: String) -> Int {
        text.components(separatedBy: imageToken).count - 1
    }

    public static func expand(_ text: String, imageCount: Int, imageSequenceLength: Int, splitImages: Bool) throws -> String {
        let placeholders = placeholderCount(text)
        guard placeholders == imageCount else { throw CountMismatch(placeholders: placeholders, images: imageCount) }
        let block = fakeToken + String(repeating: imageToken, count: imageSequenceLength) + fakeToken
        return text.replacingOccurrences(of: imageToken, with: String(repeating: block, count: splitImages ? 5 : 1))
            .replacingOccurrences(of: fakeToken + fakeToken, with: fakeToken)
    }
}
