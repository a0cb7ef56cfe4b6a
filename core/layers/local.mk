# core/layers
