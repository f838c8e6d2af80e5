import IdeficsImages
import IdeficsTokenizer

/// A chat message whose content interleaves text and images, as a user of the library writes it.
public struct Message: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        case text(String)
        case image(RGBImage)
    }

    public var role: String
    public var content: [Content]

    public init(role: String, content: [Content]) {
        self.role = role
        self.content = content
    }

    public static func user(_ content: Content...) -> Message { Message(role: "user", content: content) }
    public static func system(_ text: String) -> Message { Message(role: "system", content: [.text(text)]) }
    public static func assistant(_ text: String) -> Message { Message(role: "assistant", content: [.text(text)]) }

    /// The images, in order.
    public var images: [RGBImage] {
        content.compactMap { if case .image(let image) = $0 { image } else { nil } }
    }

    /// The message as the chat template sees it: `{"type": "text"}` / `{"type": "image"}` parts.
    var templateMessage: ChatMessage {
        ChatMessage(role: role, parts: content.map {
            switch $0 {
            case .text(let text): .text(text)
            case .image: .image
            }
        })
    }
}
