import Foundation
import IdeficsCheckpoint
import TestSupport
import XCTest

final class CheckpointTests: XCTestCase {
    private struct TinyConfig: Decodable, Equatable {
        let hidden_size: Int
    }

    private func folder(files: [String: Data]) throws -> URL {
        let directory = try temporaryDirectory()
        for (name, data) in files { try data.write(to: directory.appendingPathComponent(name)) }
        return directory
    }

    func testShardedCheckpointFindsEachTensorInItsShard() throws {
        let index = #"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#
        let directory = try folder(files: [
            "model.safetensors.index.json": Data(index.utf8),
            "model-00001-of-00002.safetensors": SafetensorsWriter.file([.init(name: "a", shape: [2], values: [1, 2])]),
            "model-00002-of-00002.safetensors": SafetensorsWriter.file([.init(name: "b", shape: [1], values: [3])]),
        ])
        let checkpoint = try Checkpoint(pathOrID: directory.path)
        XCTAssertEqual(checkpoint.tensorNames, ["a", "b"])
        XCTAssertEqual(try checkpoint.floats("b", count: 1), [3])
    }

    func testMissingShardNamesTheFile() throws {
        let index = #"{"weight_map":{"a":"model-00001-of-00002.safetensors"}}"#
        let directory = try folder(files: ["model.safetensors.index.json": Data(index.utf8)])
        XCTAssertEqual(errorText { try Checkpoint(directory: directory) },
                       "\(directory.path)/model-00001-of-00002.safetensors: missing (No such file or directory)")
    }

    func testIndexThatNamesATensorTheShardLacks() throws {
        let index = #"{"weight_map":{"a":"model.safetensors","ghost":"model.safetensors"}}"#
        let directory = try folder(files: [
            "model.safetensors.index.json": Data(index.utf8),
            "model.safetensors": SafetensorsWriter.file([.init(name: "a", shape: [1], values: [1])]),
        ])
        XCTAssertEqual(errorText { try Checkpoint(directory: directory) },
                       "\(directory.path)/model.safetensors: tensor ghost is missing")
    }

    func testFolderWithoutWeights() throws {
        let directory = try folder(files: ["config.json": Data("{}".utf8)])
        XCTAssertTrue(errorText { try Checkpoint(directory: directory) }.contains("no model.safetensors or model.safetensors.index.json"))
    }

    func testMissingTensorAndShapeMismatchNameTheTensor() throws {
        let directory = try folder(files: ["model.safetensors": SafetensorsWriter.file([.init(name: "w", shape: [2, 3], values: [1, 2, 3, 4, 5, 6])])])
        let checkpoint = try Checkpoint(directory: directory)
        XCTAssertEqual(errorText { try checkpoint.tensor("lm_head.weight") }, "\(directory.path): tensor lm_head.weight is missing")
        XCTAssertEqual(errorText { try checkpoint.tensor("w", shape: [3, 2]) },
                       "\(directory.path)/model.safetensors: tensor w: shape [2, 3] disagrees with config.json, which implies [3, 2]")
    }

    func testIntegerTensorWhereWeightsBelongIsRefused() throws {
        let header = #"{"w":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}"#
        let directory = try folder(files: ["model.safetensors": SafetensorsWriter.file(header: header, payload: Data([1, 2]))])
        XCTAssertEqual(errorText { try Checkpoint(directory: directory).tensor("w", shape: [2]) },
                       "\(directory.path)/model.safetensors: tensor w: dtype I8 is not F32, F16 or BF16")
    }

    func testConfigErrorsNameFileAndField() throws {
        let directory = try folder(files: [
            "model.safetensors": SafetensorsWriter.file([]),
            "config.json": Data(#"{"text_config": {"hidden": 4}}"#.utf8),
            "broken.json": Data("{oops".utf8),
        ])
        let checkpoint = try Checkpoint(directory: directory)
        XCTAssertEqual(errorText { try checkpoint.decode(TinyConfig.self, from: "config.json", key: "text_config") },
                       "\(directory.path)/config.json: field text_config.hidden_size is missing")
        XCTAssertTrue(errorText { try checkpoint.decode(TinyConfig.self, from: "broken.json") }
            .hasPrefix("\(directory.path)/broken.json: invalid JSON"))
        XCTAssertEqual(errorText { try checkpoint.decode(TinyConfig.self, from: "absent.json") },
                       "\(directory.path)/absent.json: missing (required by TinyConfig)")
    }

    func testNeitherFolderNorModelID() {
        XCTAssertEqual(errorText { try Checkpoint(pathOrID: "/no/such/folder") },
                       "model not found: /no/such/folder is neither a checkpoint folder nor a model id in the Hugging Face cache")
    }
}

/// Folders in formats this engine does not read say so, and how to convert them.
final class UnsupportedFormatTests: XCTestCase {
    func testPickleWeightsOnly() throws {
        for name in ["pytorch_model.bin", "pytorch_model.bin.index.json"] {
            let directory = try temporaryDirectory()
            try Data().write(to: directory.appendingPathComponent(name))
            let message = errorText { try Checkpoint(directory: directory) }
            XCTAssertTrue(message.hasPrefix("\(directory.path)/\(name): PyTorch pickle weights are not read"), message)
            XCTAssertTrue(message.contains(".save_pretrained('\(directory.path)-safetensors')"), message)
        }
    }
}
