import Foundation
@testable import IdeficsModels
import TestSupport
import XCTest

/// NaViT position buckets against a table torch made for every patch count of several grids
/// (Tests/Fixtures/vision/position_ids.json, scripts/make_vision_fixtures.py).
final class VisionPositionsTests: XCTestCase {
    private var table: [String: Any] = [:]

    override func setUpWithError() throws {
        table = try JSONSerialization.jsonObject(with: Fixtures.data("vision/position_ids.json")) as! [String: Any]
    }

    func testBoundariesAreTorchsFloat32ArangeBitForBit() {
        for (side, entry) in table["boundaries"] as! [String: [String: Any]] {
            let expected = (entry["bits_hex"] as! [String]).map { UInt32($0, radix: 16)! }
            XCTAssertEqual(VisionPositions.boundaries(Int(side)!).map(\.bitPattern), expected, "N = \(side)")
        }
    }

    func testBucketsForEveryPatchCount() {
        for (side, perCount) in table["buckets"] as! [String: [String: [Int]]] {
            for (count, expected) in perCount {
                XCTAssertEqual(VisionPositions.buckets(count: Int(count)!, patchesPerSide: Int(side)!), expected,
                               "N = \(side), \(count) patches")
            }
        }
    }

    func testIdsCombineRowAndColumnBuckets() {
        XCTAssertEqual(VisionPositions.ids(rows: 2, columns: 3, patchesPerSide: 4), [0, 1, 2, 8, 9, 10])
    }
}
