// Another issuer, built with Digital Bazaar's libraries only: one fresh
// Ed25519 Multikey signs every document given (eddsa-rdfc-2022, with
// @digitalbazaar/vc's issue), e.g. a credential and its status list
// credential. Request: {did, documents}. Answer: {documents,
// publicKeyMultibase, verificationMethod}.
import * as vc from '@digitalbazaar/vc';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {makeDocumentLoader, serve} from './loader.mjs';

await serve(async ({did, documents}) => {
  const keyPair = await Ed25519Multikey.generate({controller: did});
  keyPair.id = `${did}#${keyPair.publicKeyMultibase}`;
  const suite = new DataIntegrityProof({signer: keyPair.signer(), cryptosuite: eddsaRdfc2022});
  const signed = [];
  for(const credential of documents) {
    signed.push(await vc.issue({credential, suite, documentLoader: makeDocumentLoader()}));
  }
  return {documents: signed, publicKeyMultibase: keyPair.publicKeyMultibase, verificationMethod: keyPair.id};
});
