//! Thumbnails (`?thumb=` on file downloads), as PocketBase serves them: `WxH` (fill, crop
//! center), `WxHt` (crop top), `WxHb` (crop bottom), `WxHf` (fit inside), `0xH` / `Wx0`
//! (resize keeping the ratio), for PNG, JPEG, GIF and WebP originals; only sizes listed in
//! the field's `thumbs` plus the default `100x100` — anything else serves the original.
//!
//! Invariants:
//! 1. A thumbnail is generated once and cached next to the original
//!    (`thumbs_<name>/<spec>_<name>`, PocketBase's layout), written to a temp name and renamed,
//!    so a reader never sees a partial file; concurrent requests for the same thumbnail wait
//!    for the one generation ([`get_or_create`]), never run it twice.
//! 2. Decoding is bounded ([`MAX_SOURCE_DIMENSION`], [`MAX_DECODE_ALLOC`]): a decompression bomb
//!    (huge declared dimensions) fails fast and the original is served; nothing is written.
//! 3. Thumbnails are derived data: never in the log, regenerated if missing.

use image::{DynamicImage, ImageFormat, ImageReader};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

/// The size every file field offers.
pub const DEFAULT_THUMB: &str = "100x100";
/// Largest source width/height decoded.
pub const MAX_SOURCE_DIMENSION: u32 = 12_000;
/// Most bytes the decoder may allocate.
pub const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;
/// Largest thumbnail width/height produced.
pub const MAX_THUMB_DIMENSION: u32 = 4096;

/// How the image is fitted into the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fill the box, crop the center.
    Center,
    /// Fill the box, keep the top.
    Top,
    /// Fill the box, keep the bottom.
    Bottom,
    /// Fit inside the box (no crop).
    Fit,
}

/// A parsed thumb size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbSpec {
    /// Width (0 ⇒ from the height, keeping the ratio).
    pub width: u32,
    /// Height (0 ⇒ from the width, keeping the ratio).
    pub height: u32,
    /// Fitting mode.
    pub mode: Mode,
}

/// Parses `WxH[t|b|f]` (not both zero, at most [`MAX_THUMB_DIMENSION`]).
pub fn parse(spec: &str) -> Option<ThumbSpec> {
    let (size, mode) = match spec.as_bytes().last()? {
        b't' => (&spec[..spec.len() - 1], Mode::Top),
        b'b' => (&spec[..spec.len() - 1], Mode::Bottom),
        b'f' => (&spec[..spec.len() - 1], Mode::Fit),
        _ => (spec, Mode::Center),
    };
    let (width, height) = size.split_once('x')?;
    let digits = |text: &str| {
        !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(width) || !digits(height) {
        return None;
    }
    let (width, height) = (width.parse::<u32>().ok()?, height.parse::<u32>().ok()?);
    if (width == 0 && height == 0) || width > MAX_THUMB_DIMENSION || height > MAX_THUMB_DIMENSION {
        return None;
    }
    Some(ThumbSpec {
        width,
        height,
        mode,
    })
}

/// Whether a field offers `spec` (its `thumbs` or the default).
pub fn offered(spec: &str, field_thumbs: &[String]) -> bool {
    spec == DEFAULT_THUMB || field_thumbs.iter().any(|thumb| thumb == spec)
}

/// Whether thumbnails are made for this content type.
pub fn is_thumbable(mime: &str) -> bool {
    matches!(
        crate::files::sniff::essence(mime).as_str(),
        "image/png" | "image/jpeg" | "image/jpg" | "image/gif" | "image/webp"
    )
}

/// The cached thumbnail's path for the original at `original` (PocketBase's layout).
pub fn thumb_path(original: &Path, spec: &str) -> Option<PathBuf> {
    let name = original.file_name()?.to_str()?;
    let dir = original.parent()?.join(format!("thumbs_{name}"));
    Some(dir.join(format!("{spec}_{name}")))
}

/// Resizes `image` as `spec` says.
pub fn resize(image: &DynamicImage, spec: ThumbSpec) -> DynamicImage {
    use image::imageops::FilterType::Lanczos3;
    let (w, h) = (image.width().max(1), image.height().max(1));
    if spec.width == 0 {
        let width = ((u64::from(w) * u64::from(spec.height)) / u64::from(h)).max(1) as u32;
        return image.resize_exact(width, spec.height, Lanczos3);
    }
    if spec.height == 0 {
        let height = ((u64::from(h) * u64::from(spec.width)) / u64::from(w)).max(1) as u32;
        return image.resize_exact(spec.width, height, Lanczos3);
    }
    if spec.mode == Mode::Fit {
        return image.resize(spec.width, spec.height, Lanczos3);
    }
    // Fill: scale to cover the box, then crop at the anchor.
    let scale = f64::max(
        f64::from(spec.width) / f64::from(w),
        f64::from(spec.height) / f64::from(h),
    );
    let scaled_w = ((f64::from(w) * scale).ceil() as u32).max(spec.width);
    let scaled_h = ((f64::from(h) * scale).ceil() as u32).max(spec.height);
    let scaled = image.resize_exact(scaled_w, scaled_h, Lanczos3);
    let x = (scaled_w - spec.width) / 2;
    let y = match spec.mode {
        Mode::Top => 0,
        Mode::Bottom => scaled_h - spec.height,
        _ => (scaled_h - spec.height) / 2,
    };
    scaled.crop_imm(x, y, spec.width, spec.height)
}

/// Decodes `original` (bounded), resizes and encodes in the original's format.
pub fn render(original: &Path, spec: ThumbSpec) -> Result<Vec<u8>, String> {
    let mut reader = ImageReader::open(original)
        .map_err(|err| err.to_string())?
        .with_guessed_format()
        .map_err(|err| err.to_string())?;
    let format = reader.format().ok_or("unknown image format")?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_DIMENSION);
    limits.max_image_height = Some(MAX_SOURCE_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|err| err.to_string())?;
    let thumb = resize(&image, spec);
    let (thumb, format) = match format {
        ImageFormat::Jpeg => (DynamicImage::ImageRgb8(thumb.to_rgb8()), ImageFormat::Jpeg),
        ImageFormat::Gif => (DynamicImage::ImageRgba8(thumb.to_rgba8()), ImageFormat::Gif),
        ImageFormat::WebP => (
            DynamicImage::ImageRgba8(thumb.to_rgba8()),
            ImageFormat::WebP,
        ),
        _ => (thumb, ImageFormat::Png),
    };
    let mut out = std::io::Cursor::new(Vec::new());
    thumb
        .write_to(&mut out, format)
        .map_err(|err| err.to_string())?;
    Ok(out.into_inner())
}

/// Generations in flight, by thumbnail path (entries live only while one runs).
static IN_FLIGHT: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

#[cfg(test)]
static RENDERS: LazyLock<Mutex<HashMap<PathBuf, u32>>> = LazyLock::new(Mutex::default);

fn writes_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = target.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".tmp-{}", crate::files::names::random_part(12)));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// The cached thumbnail of `original` for `spec`, generating it once if needed; `None` when
/// it cannot be made (not an image we decode, a bomb, an I/O error): serve the original.
pub async fn get_or_create(original: &Path, spec_text: &str) -> Option<PathBuf> {
    let spec = parse(spec_text)?;
    let target = thumb_path(original, spec_text)?;
    if target.exists() {
        return Some(target);
    }
    let lock = {
        let mut map = IN_FLIGHT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(map.entry(target.clone()).or_default())
    };
    let guard = lock.lock().await;
    let result = if target.exists() {
        Some(target.clone())
    } else {
        let (source, dest) = (original.to_path_buf(), target.clone());
        let made = tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            {
                let mut renders = RENDERS.lock().unwrap_or_else(|p| p.into_inner());
                *renders.entry(dest.clone()).or_default() += 1;
            }
            let bytes = render(&source, spec)?;
            writes_atomically(&dest, &bytes).map_err(|err| err.to_string())
        })
        .await;
        match made {
            Ok(Ok(())) => Some(target.clone()),
            Ok(Err(reason)) => {
                tracing::debug!(%reason, original = %original.display(), "no thumbnail");
                None
            }
            Err(err) => {
                tracing::warn!(%err, "thumbnail task failed");
                None
            }
        }
    };
    drop(guard);
    IN_FLIGHT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&target);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GenericImageView, RgbImage};

    #[test]
    fn specs() {
        assert_eq!(
            parse("100x50t"),
            Some(ThumbSpec {
                width: 100,
                height: 50,
                mode: Mode::Top
            })
        );
        assert_eq!(parse("0x50").map(|s| (s.width, s.height)), Some((0, 50)));
        assert_eq!(parse("50x0f").map(|s| s.mode), Some(Mode::Fit));
        for bad in [
            "", "x", "0x0", "10x", "ax10", "10x10z", "99999x1", "1x1x1", "-1x5", "10X10",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(offered("100x100", &[]));
        assert!(offered("50x50", &["50x50".to_string()]));
        assert!(!offered("50x50", &[]));
    }

    fn sample(w: u32, h: u32) -> DynamicImage {
        // Top half red, bottom half blue.
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |_, y| {
            if y < h / 2 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        }))
    }

    #[test]
    fn resize_modes() {
        let image = sample(200, 100);
        let dims = |spec: &str| resize(&image, parse(spec).expect("spec")).dimensions();
        assert_eq!(dims("50x50"), (50, 50));
        assert_eq!(dims("50x50t"), (50, 50));
        assert_eq!(dims("50x50f"), (50, 25));
        assert_eq!(dims("0x50"), (100, 50));
        assert_eq!(dims("50x0"), (50, 25));
        // A tall crop of a wide image: top keeps red, bottom keeps blue.
        let tall = sample(100, 200);
        let top = resize(&tall, parse("100x50t").expect("t"));
        assert_eq!(top.get_pixel(50, 10).0[0], 255);
        let bottom = resize(&tall, parse("100x50b").expect("b"));
        assert_eq!(bottom.get_pixel(50, 40).0[2], 255);
    }

    #[tokio::test]
    async fn generated_once_under_concurrency_and_cached() {
        let dir = tempfile::tempdir().expect("dir");
        let original = dir.path().join("red_0123456789.png");
        sample(300, 200).save(&original).expect("save");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let original = original.clone();
            tasks.push(tokio::spawn(async move {
                get_or_create(&original, "100x100").await
            }));
        }
        let mut paths = Vec::new();
        for task in tasks {
            paths.push(task.await.expect("join").expect("thumb"));
        }
        let expected = dir
            .path()
            .join("thumbs_red_0123456789.png/100x100_red_0123456789.png");
        assert!(paths.iter().all(|path| *path == expected));
        let thumb = image::open(&expected).expect("decodes");
        assert_eq!(thumb.dimensions(), (100, 100));
        let renders = RENDERS.lock().expect("renders");
        assert_eq!(renders.get(&expected), Some(&1), "generated exactly once");
    }

    #[tokio::test]
    async fn bombs_and_non_images_serve_the_original() {
        let dir = tempfile::tempdir().expect("dir");
        // A PNG header declaring 100000 x 100000 pixels (a decompression bomb).
        let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(b"\x08\x02\0\0\0");
        let crc = crc32fast::hash(&bomb[12..]);
        bomb.extend_from_slice(&crc.to_be_bytes());
        let original = dir.path().join("bomb_0123456789.png");
        std::fs::write(&original, &bomb).expect("write");
        assert!(get_or_create(&original, "100x100").await.is_none());
        let text = dir.path().join("text_0123456789.png");
        std::fs::write(&text, b"not an image").expect("write");
        assert!(get_or_create(&text, "100x100").await.is_none());
        assert!(!dir
            .path()
            .join("thumbs_bomb_0123456789.png/100x100_bomb_0123456789.png")
            .exists());
    }
}
