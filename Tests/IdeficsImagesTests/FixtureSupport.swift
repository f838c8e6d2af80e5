import Foundation
import TestSupport
import XCTest
@testable import IdeficsImages

/// Access to Tests/Fixtures/images (made by scripts/make_image_fixtures.py).
enum ImageFixtures {
    static func manifest() throws -> [String: Any] {
        let data = try Fixtures.data("images/manifest.json")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func bytes(_ relative: String) throws -> [UInt8] { [UInt8](try Fixtures.data("images/" + relative)) }

    static func path(_ relative: String) -> String { Fixtures.url("images/" + relative).path }

    /// An expected-output PNG (8-bit RGB written by Pillow), read back with our own decoder.
    static func rgb(_ relative: String) throws -> RGBImage {
        try ImageDecoder.decode(.file(path(relative))).rgb()
    }
}

/// Max and mean absolute difference between two same-size images, and the count of differing samples.
func difference(_ a: RGBImage, _ b: RGBImage) -> (max: Int, mean: Double, count: Int) {
    var maxDiff = 0, total = 0, count = 0
    for (x, y) in zip(a.pixels, b.pixels) {
        let d = abs(Int(x) - Int(y))
        maxDiff = max(maxDiff, d)
        total += d
        if d != 0 { count += 1 }
    }
    return (maxDiff, Double(total) / Double(max(1, a.pixels.count)), count)
}
