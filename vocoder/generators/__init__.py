"""Vocoder generators; importing this package registers them."""

from vocoder.generators.base import Generator, Snake
from vocoder.generators.griffinlim import GriffinLim
from vocoder.generators.hifigan import HIFIGAN_PRESETS, HiFiGAN, SnakeHiFiGAN
from vocoder.generators.istft import ISTFTGenerator
from vocoder.generators.melgan import MelGAN
from vocoder.generators.phase import PhaseGenerator

__all__ = ["HIFIGAN_PRESETS", "Generator", "GriffinLim", "HiFiGAN", "ISTFTGenerator", "MelGAN", "PhaseGenerator",
           "Snake", "SnakeHiFiGAN"]
