//! WAV (hound) and FLAC (symphonia) decoding to mono f32 in [-1, 1].
//!
//! The container is recognised from its first bytes, not from the file name, so a FLAC file
//! named `.wav` still decodes and random bytes named `.wav` are rejected with a clear error.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Decoded audio, mixed down to one channel, at the file's own sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Mono samples in [-1, 1] (the mean of the channels).
    pub samples: Vec<f32>,
    /// The file's sample rate in Hz.
    pub sample_rate: u32,
    /// Number of channels in the file before the down-mix.
    pub channels: usize,
}

/// Decodes a WAV (PCM 8/16/24/32-bit integer, 32-bit float, any channel count) or FLAC file.
///
/// Rejects, with an error naming the file: missing and empty files, files that are neither
/// WAV nor FLAC, corrupt or truncated data, files with no samples, and NaN or infinite samples.
pub fn decode(path: &Path) -> Result<DecodedAudio> {
    let mut magic = [0u8; 12];
    let header_len = {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        read_up_to(&mut file, &mut magic).map_err(|e| Error::io(path, e))?
    };
    let decoded = match &magic[..header_len] {
        [] => return Err(Error::audio(path, "empty file (0 bytes); re-export or remove it")),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'A', b'V', b'E'] => decode_wav(path)?,
        [b'f', b'L', b'a', b'C', ..] => decode_flac(path)?,
        other => {
            return Err(Error::audio(
                path,
                format!(
                    "not a WAV (RIFF/WAVE) or FLAC file (starts with {:02x?}); convert it to WAV or FLAC",
                    &other[..other.len().min(4)]
                ),
            ))
        }
    };
    check_samples(path, &decoded)?;
    Ok(decoded)
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn check_samples(path: &Path, audio: &DecodedAudio) -> Result<()> {
    if audio.sample_rate == 0 {
        return Err(Error::audio(path, "sample rate is 0 in the header"));
    }
    if audio.samples.is_empty() {
        return Err(Error::audio(path, "the file holds no audio samples"));
    }
    let bad = audio.samples.iter().filter(|s| !s.is_finite()).count();
    if bad > 0 {
        return Err(Error::audio(
            path,
            format!(
                "{bad} of {} samples are NaN or infinite; the file is corrupt",
                audio.samples.len()
            ),
        ));
    }
    Ok(())
}

fn decode_wav(path: &Path) -> Result<DecodedAudio> {
    let wav_err = |e: hound::Error| Error::audio(path, format!("corrupt or unsupported WAV: {e}"));
    let reader = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err(Error::audio(path, "WAV header says 0 channels"));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(Error::audio(
                    path,
                    format!(
                        "{}-bit float WAV is not supported; use 32-bit float or integer PCM",
                        spec.bits_per_sample
                    ),
                ));
            }
            reader
                .into_samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(wav_err)?
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f64;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(wav_err)?
        }
    };
    Ok(DecodedAudio {
        samples: downmix(&interleaved, channels),
        sample_rate: spec.sample_rate,
        channels,
    })
}

fn decode_flac(path: &Path) -> Result<DecodedAudio> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let flac_err =
        |e: symphonia::core::errors::Error| Error::audio(path, format!("corrupt FLAC: {e}"));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("flac");
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(flac_err)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| Error::audio(path, "FLAC file has no audio track"))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| Error::audio(path, "FLAC track has no audio parameters"))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(flac_err)?;
    let mut interleaved = Vec::new();
    let mut channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
    let mut sample_rate = params.sample_rate.unwrap_or(0);
    let mut chunk = Vec::new();
    while let Some(packet) = format.next_packet().map_err(flac_err)? {
        if packet.track_id != track_id {
            continue;
        }
        let buffer = decoder.decode(&packet).map_err(flac_err)?;
        channels = buffer.spec().channels().count();
        sample_rate = buffer.spec().rate();
        chunk.resize(buffer.samples_interleaved(), 0.0f32);
        buffer.copy_to_slice_interleaved(&mut chunk);
        interleaved.extend_from_slice(&chunk);
    }
    if channels == 0 {
        return Err(Error::audio(path, "FLAC stream declares 0 channels"));
    }
    Ok(DecodedAudio {
        samples: downmix(&interleaved, channels),
        sample_rate,
        channels,
    })
}

/// Averages interleaved channels into one; a trailing partial frame is dropped.
pub(crate) fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    let inv = 1.0 / channels as f32;
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() * inv)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_frames() {
        assert_eq!(downmix(&[1.0, 0.0, 0.5, 0.5, 0.2], 2), vec![0.5, 0.5]);
    }
}
