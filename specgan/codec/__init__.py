"""Compression: a speech codec whose decoder is the GAN vocoder (``specgan encode`` / ``specgan decode``).

The recipe's log-mel is encoded by a convolutional encoder and residual vector quantisation with
quantiser dropout (one model, several bitrates), decoded back to a log-mel by a decoder trained with
a critic, and rendered by the trained speech vocoder. docs/codec.md has the design, the file format
and the rate-quality table.
"""
