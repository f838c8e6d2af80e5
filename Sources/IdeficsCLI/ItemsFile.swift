import Foundation
import Idefics

/// `--items FILE.json`: the exact item list transformers' Idefics processors take, as JSON: a list of strings
/// (text) and `{"image": PATH_OR_URL}` objects, or a list of such lists (a batch, one row each). As in
/// `IdeficsProcessor`, an Idefics v1 text item that is a URL (`https://host/...`, no spaces) is an image.
enum ItemsFile {
    enum Item: Equatable {
        case text(String)
        case image(String)
    }

    struct Failure: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "\(path): \(reason)" }
    }

    /// The rows of the file (one unless it holds a list of lists).
    static func read(_ path: String) throws -> (rows: [[Item]], batch: Bool) {
        let text = try PromptFile.read(path)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(text.utf8))
        } catch {
            throw Failure(path: path, reason: "not valid JSON (\((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error))")
        }
        guard let list = json as? [Any], !list.isEmpty else {
            throw Failure(path: path, reason: "must be a non-empty JSON list of items (or of item lists)")
        }
        if list.allSatisfy({ $0 is [Any] }) {
            return (try list.enumerated().map { try row($1 as! [Any], path: path, at: "row \($0)") }, true)
        }
        return ([try row(list, path: path, at: "the list")], false)
    }

    private static func row(_ list: [Any], path: String, at place: String) throws -> [Item] {
        guard !list.isEmpty else { throw Failure(path: path, reason: "\(place) is empty") }
        return try list.enumerated().map { index, value in
            if let text = value as? String { return .text(text) }
            if let object = value as? [String: Any], object.count == 1, let image = object["image"] as? String {
                return .image(image)
            }
            throw Failure(path: path, reason: "\(place), item \(index): an item is a string or {\"image\": PATH_OR_URL}")
        }
    }

    /// The pipeline's items: images loaded (and, for Idefics v1, URL text items taken as images).
    static func load(_ row: [Item], pipeline: Pipeline, options: ImageLoadOptions) throws -> [PromptItem] {
        try row.map { item in
            switch item {
            case .text(let text) where pipeline.ideficsV1 != nil && IdeficsPrompt.isURL(text):
                return .image(try ImageInput.load(IdeficsPrompt.url(text)!, options: options))
            case .text(let text): return .text(text)
            case .image(let reference): return .image(try ImageInput.load(reference, options: options))
            }
        }
    }
}
