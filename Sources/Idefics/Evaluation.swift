import Foundation
import IdeficsGeneration
import IdeficsModels

/// Exact-match evaluation on {image, question, answer, type} items: each item is one chat turn (the image, then the
/// question), answered greedily; an answer counts when its stripped text equals `answer`.
public enum Evaluation {
    /// Runs the items through a `GenerationEngine`: continuously batched, `batchSize` rows at most, a repeated image
    /// encoded once (its image cache). No prompt prefix is reused, so that every answer is its lone run's, token for
    /// token. Images are read as their items are submitted, twice `batchSize` ahead of the answers.
    public static func run(_ items: [EvaluationItem], pipeline: Pipeline, batchSize: Int = 8, maxNewTokens: Int = 20,
                           progress: (Int) -> Void = { _ in }) async throws -> [EvaluationResult] {
        let batchSize = max(1, batchSize)
        let ahead = 2 * batchSize
        let engine = GenerationEngine(pipeline: pipeline, capacity: ahead, maxBatchSize: batchSize, prefixCacheTokens: 0)
        defer { engine.shutDown(grace: .zero) } // after an error, the items still running end at once
        let request = GenerationRequest(maxNewTokens: maxNewTokens, doSample: false)
        func submit(_ item: EvaluationItem) throws -> AsyncThrowingStream<GenerationEngine.Event, Error> {
            let image = try ImageInput.load(item.imagePath)
            // Never nil: at most `ahead` (its capacity) are in at once.
            return engine.submit(images: [image]) { pipeline, features in
                let (text, _) = try pipeline.render([.user(.image(image), .text(item.question))])
                return (try pipeline.prepare(prompt: text, imageFeatures: features), request)
            }!
        }
        var running = try items.prefix(ahead).map(submit)
        var results: [EvaluationResult] = []
        for (index, item) in items.enumerated() {
            let events = running.removeFirst()
            var answer: GenerationOutput?
            for try await event in events {
                if case .finished(let output) = event { answer = output }
            }
            guard let answer else { throw GenerationError.shutDown } // a stream ends without one only then
            results.append(EvaluationResult(item: item, output: answer))
            if index + ahead < items.count { running.append(try submit(items[index + ahead])) }
            progress(results.count)
        }
        return results
    }
}

public struct EvaluationItem: Decodable, Sendable {
    public let image: String
    public let question: String
    public let answer: String
    public let type: String
    public var imagePath: String = ""

    enum CodingKeys: String, CodingKey { case image, question, answer, type }

    public static func load(_ path: String) throws -> [EvaluationItem] {
        let text = try InputFile.text(at: path)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        // Lines end in \n or \r\n (one Character); blank lines are skipped but keep the numbering.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
            .filter { !$0.element.allSatisfy(\.isWhitespace) }
        let items = try lines.map { index, line in
            var item: EvaluationItem
            do {
                item = try JSONDecoder().decode(EvaluationItem.self, from: Data(line.utf8))
            } catch {
                throw PipelineError.badEvaluationItem(path: path, line: index + 1,
                                                      reason: "not an {image, question, answer, type} object")
            }
            let candidates = [item.image, folder.appendingPathComponent(item.image).path,
                              folder.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(item.image).path]
            item.imagePath = candidates.first { FileManager.default.fileExists(atPath: $0) } ?? item.image
            return item
        }
        guard !items.isEmpty else { throw PipelineError.emptyEvaluationSet(path: path) }
        return items
    }
}

public struct EvaluationResult: Encodable, Sendable {
    public let image: String
    public let question: String
    public let answer: String
    public let type: String
    public let prediction: String
    public let generatedTokenIds: [Int]
    public let correct: Bool

    enum CodingKeys: String, CodingKey {
        case image, question, answer, type, prediction, correct, generatedTokenIds = "generated_token_ids"
    }

    init(item: EvaluationItem, output: GenerationOutput) {
        image = item.image
        question = item.question
        answer = item.answer
        type = item.type
        prediction = output.text.trimmingCharacters(in: .whitespacesAndNewlines)
        generatedTokenIds = output.generatedTokenIds
        correct = prediction == item.answer
    }
}

public struct EvaluationReport: Encodable, Sendable {
    public struct Score: Encodable, Sendable {
        public let correct: Int
        public let total: Int
        public var accuracy: Double { total > 0 ? Double(correct) / Double(total) : 0 }

        enum CodingKeys: String, CodingKey { case correct, total, accuracy }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(correct, forKey: .correct)
            try c.encode(total, forKey: .total)
            try c.encode(accuracy, forKey: .accuracy)
        }
    }

    public let overall: Score
    public let perType: [String: Score]

    enum CodingKeys: String, CodingKey { case overall, perType = "per_type" }

    public init(_ results: [EvaluationResult]) {
        func score(_ rows: [EvaluationResult]) -> Score { Score(correct: rows.filter(\.correct).count, total: rows.count) }
        overall = score(results)
        perType = Dictionary(grouping: results, by: \.type).mapValues(score)
    }

    public var table: String {
        func line(_ name: String, _ s: Score) -> String {
            name.padding(toLength: 14, withPad: " ", startingAt: 0)
                + String(format: "%6.1f%%  (%d/%d)\n", 100 * s.accuracy, s.correct, s.total)
        }
        return perType.keys.sorted().map { line($0, perType[$0]!) }.joined() + line("overall", overall)
    }
}

